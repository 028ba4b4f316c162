"""What every training pipeline does around its job: record the run in its folder, and push it when it is done."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..runs import RunRecord, end_run, start_run
from ..training.arguments import RunArguments


@dataclass
class Outcome:
    """How the job ended: a pipeline sets `stopped` when a signal stopped it before the end."""

    stopped: bool = False


@contextmanager
def recorded_run(
    output_dir: str,
    job: str,
    *,
    main_process: bool,
    method: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
) -> Iterator[Outcome]:
    """Write run.json as running, then as finished, stopped or failed (an exception) when the block ends."""
    record: RunRecord | None = None
    if main_process:
        record = start_run(output_dir, job, method=method, base_model=base_model, datasets=datasets)
    outcome, status = Outcome(), "failed"
    try:
        yield outcome
        status = "stopped" if outcome.stopped else "finished"
    finally:
        if record is not None:
            end_run(output_dir, record, status)


def push_finished_run(run_args: RunArguments, output_dir: str, main_process: bool) -> None:
    """Upload a finished run when `push_repo_id` is set (main process only); the card reads the run's record."""
    if run_args.push_repo_id is None or not main_process:
        return
    from ..hub import push_folder

    push_folder(output_dir, run_args.push_repo_id, private=run_args.push_private, dry_run=run_args.push_dry_run)
