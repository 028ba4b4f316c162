"""Every job's metrics.json, read through one function: the same head for every job, then the job's own metrics."""

from pathlib import Path

from toolkit.jobs import JOBS
from toolkit.runs import SUMMARY_HEAD, read_summary


def checked_summary(folder: str | Path, job: str) -> dict:
    """The run's summary (`toolkit.runs.read_summary`), checked to open with the head every job writes."""
    summary = read_summary(folder)
    assert list(summary)[: len(SUMMARY_HEAD)] == list(SUMMARY_HEAD), folder
    assert (summary["job"], summary["unit"]) == (job, JOBS[job].unit)
    assert summary["units"] > 0 and summary["units_per_second"] > 0 and summary["seconds"] > 0
    assert summary["peak_memory_mib"] > 0 and summary["headline"] and summary["datasets"]
    return summary
