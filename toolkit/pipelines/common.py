"""What every pipeline does around its job: record the run in its folder, push it when it is done, and turn a stop
request into the exit status a scheduler reads."""

from collections.abc import Iterator
from contextlib import contextmanager

from ..runs import RunRecord, end_run, start_run
from ..stopping import JobStopped
from ..training.arguments import RunArguments


@contextmanager
def recorded_run(
    output_dir: str,
    job: str,
    *,
    main_process: bool,
    method: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
) -> Iterator[None]:
    """Write run.json as running, then as finished, stopped (a signal) or failed (any other exception)."""
    record: RunRecord | None = None
    if main_process:
        record = start_run(output_dir, job, method=method, base_model=base_model, datasets=datasets)
    status = "failed"
    try:
        yield
        status = "finished"
    except JobStopped:
        status = "stopped"
        raise
    finally:
        if record is not None:
            end_run(output_dir, record, status)


@contextmanager
def exit_on_stop() -> Iterator[None]:
    """A job stopped by a signal ends its command with 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C),
    after saying where it stopped."""
    try:
        yield
    except JobStopped as stop:
        print(stop)
        raise SystemExit(stop.exit_code) from None


def push_finished_run(run_args: RunArguments, output_dir: str, main_process: bool) -> None:
    """Upload a finished run when `push_repo_id` is set (main process only); the card reads the run's record."""
    if run_args.push_repo_id is None or not main_process:
        return
    from ..hub import push_folder

    push_folder(output_dir, run_args.push_repo_id, private=run_args.push_private, dry_run=run_args.push_dry_run)
