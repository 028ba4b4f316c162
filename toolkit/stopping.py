"""One stop mechanism for every long job (the Trainer recipes, PPO, evaluation, the demo), and the stop of a run whose
training diverged (`TrainingDiverged`: a loss, gradient or weight that is not a finite number, named with its step).

SIGTERM or SIGINT, to the launcher or to any rank, asks the job to stop at its next boundary. Training agrees on the
step across processes (the request is all-reduced at every step boundary, so every rank stops at the same step and one
checkpoint is saved); evaluation stops between batches. The job then raises `JobStopped`, and its command exits with
128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C), so a scheduler can tell a stopped run from a finished one.

`accelerate launch` with one process runs the job as a child and does not pass signals on: the child asks Linux to
send it SIGTERM when its parent dies (PR_SET_PDEATHSIG), so stopping the launcher stops the job too.
"""

import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

HANDLED = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1


class JobStopped(Exception):
    """A signal stopped the job at a boundary (after saving a checkpoint, where it trains)."""

    def __init__(self, signal_name: str, where: str):
        self.signal_name, self.where = signal_name, where
        super().__init__(f"Stopped by {signal_name} {where}.")

    @property
    def exit_code(self) -> int:
        return 128 + signal.Signals[self.signal_name].value


class _Requests:
    signal_number: int | None = None
    passed_on: Path | None = None  # the file saying this process passed its stop on to the agent


_requests = _Requests()


def _request(signum, frame) -> None:
    first = _requests.signal_number is None
    _requests.signal_number = signum
    if first:
        _pass_to_the_agent(signum)


def _pass_to_the_agent(signum: int) -> None:
    """Under torchrun's elastic agent (`accelerate launch` with several processes), pass a signal that reached one
    rank to the agent, which then stops every rank and exits with 128 + the signal's number, as when the launcher
    itself is signalled (a rank's own exit 143 reads to the agent as a failure: exit 1). The first local rank to hear
    of the stop passes it on (an exclusive file named by the agent's pid and start time), so a stop the agent sent to
    every rank is passed back once at most, which the agent's shutdown takes in its stride."""
    agent = os.getppid()
    if "TORCHELASTIC_RUN_ID" not in os.environ or agent <= 1:
        return
    try:
        started = Path(f"/proc/{agent}/stat").read_text().rsplit(")", 1)[1].split()[19]
        marker = Path(tempfile.gettempdir(), f"toolkit-stop-{agent}-{started}")
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except (OSError, IndexError):
        return  # another rank passed it on, or this is no Linux agent
    _requests.passed_on = marker
    os.kill(agent, signum)


def _set_parent_death_signal(signum: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
        except (OSError, AttributeError):
            pass


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT (and the launcher's death) request a stop instead of killing."""
    previous = {number: signal.signal(number, _request) for number in HANDLED}
    _requests.signal_number = None
    _set_parent_death_signal(signal.SIGTERM)
    try:
        yield
    finally:
        _set_parent_death_signal(0)
        for number, handler in previous.items():
            signal.signal(number, handler)
        if _requests.passed_on is not None:
            _requests.passed_on.unlink(missing_ok=True)
            _requests.passed_on = None


def requested() -> str | None:
    """The signal this process received, if any (no agreement with the other processes)."""
    return signal.Signals(_requests.signal_number).name if _requests.signal_number else None


def agreed() -> str | None:
    """The signal any process received, the same answer on every process: call it where every process calls it
    in step (a training step boundary), since it is a collective operation when the job is distributed."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return requested()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else None
    number = torch.tensor([_requests.signal_number or 0], device=device)
    torch.distributed.all_reduce(number, op=torch.distributed.ReduceOp.MAX)
    _requests.signal_number = int(number.item()) or None
    return requested()


def check(where: str) -> None:
    """Raise `JobStopped` if this process was asked to stop (between evaluation batches)."""
    if (name := requested()) is not None:
        raise JobStopped(name, where)


class TrainingDiverged(ValueError):
    """Training produced a loss, gradient or weight that is not a finite number."""


def diverged(what: str, value, step: int) -> TrainingDiverged:
    return TrainingDiverged(
        f"Training diverged: the {what} is {value} at step {step}, so every later step would learn nothing. Lower "
        "--learning_rate (or set --max_grad_norm), and check the data; the run is recorded as failed."
    )


def check_finite_weights(model: torch.nn.Module, step: int) -> None:
    """The trained parameters are all finite numbers (a run may end between two logged steps)."""
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and not torch.isfinite(parameter).all():
            raise diverged(f"weight {name}", "not finite", step)


__all__ = [
    "JobStopped",
    "TrainingDiverged",
    "agreed",
    "check",
    "check_finite_weights",
    "diverged",
    "requested",
    "stop_on_signals",
]
