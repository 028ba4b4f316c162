"""The run folder: one layout for every job, and the one place that says what a folder holds.

A run folder is a recipe's `--output_dir`. What a run is, is written into it (`run.json`), never guessed from its
shape:

    run.json              job (one of `toolkit.jobs.JOBS`), method (full, lora, prompt_tuning), status (running,
                          stopped, finished, failed), where the model is, base model, data, wall time, peak memory
    config.json, *.safetensors, tokenizer files, adapter_config.json    the trained model (PPO: in policy/)
    metrics.json          the job's summary: the same head for every job (`SUMMARY_HEAD`), then its own metrics
    metrics.jsonl         PPO: one line of metrics per logged step
    training_curves.png   loss / perplexity curves (PPO, GRPO, RLOO: reward, KL, response length)
    checkpoint-N/         resumable checkpoints (`--resume_from_checkpoint latest`)
    results.json, results.md, results.png, <model>/<task>.jsonl    evaluation
    comparison.md, comparison.png    evaluation with --compare_runs: scores beside the alignment runs' costs
    policy/, value/ or value_head.safetensors, sft-merged/
                          PPO: the policy, the value function, the merged SFT model under the policy
    merged/               LoRA with --merge_adapter: the adapter merged into its base
    hub-upload/           `toolkit push --dry_run`: exactly what would be uploaded

Every job reads and writes these names from here, and goes through `prepare_output_dir` (never write into a folder
holding another run by accident) and `resolve_checkpoint` (what `latest` means).
"""

import errno
import fcntl
import json
import logging
import os
import shutil
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from safetensors import SafetensorError, safe_open

from ._compat import PREFIX_CHECKPOINT_DIR, is_failed_write
from .jobs import JOBS, get_job

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
METRICS_LOG_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
TRAINER_STATE_FILE = "trainer_state.json"
RESULTS_JSON, RESULTS_TABLE, RESULTS_CHART = "results.json", "results.md", "results.png"
COMPARISON_TABLE, COMPARISON_CHART = "comparison.md", "comparison.png"
POLICY_DIR = JOBS["ppo"].model_path  # "policy": where a PPO run keeps its policy, as the job declares
VALUE_DIR = "value"
VALUE_HEAD_FILE = "value_head.safetensors"
SFT_MERGED_DIR = "sft-merged"
DISK_NEARLY_FULL = 64 << 20  # bytes free under which a library's "write failed" is read as a full disk
MERGED_DIR = "merged"
HUB_UPLOAD_DIR = "hub-upload"
CHECKPOINT_PREFIX = PREFIX_CHECKPOINT_DIR  # "checkpoint": folders checkpoint-<step>

STATUSES = ("running", "stopped", "finished", "failed")
# Files that mean a folder already holds a run.
RUN_MARKERS = (RUN_FILE, "config.json", "adapter_config.json", METRICS_FILE, TRAINER_STATE_FILE, RESULTS_JSON)


@dataclass
class RunRecord:
    """What `run.json` says about a run."""

    job: str
    method: str | None = None  # how the weights were trained: full, lora or prompt_tuning
    status: str = "running"
    model_path: str | None = "."  # the model's folder, relative to the run folder (the job says: PPO's policy)
    base_model: str | None = None  # the model the run started from (None: trained from scratch)
    datasets: list[str] = field(default_factory=list)
    toolkit_version: str = ""
    started: float = 0.0  # Unix time
    finished: float | None = None
    seconds: float | None = None  # wall time from start to end
    peak_memory_mib: float | None = None  # from start to end: see `peak_memory_mib`
    error: str | None = None  # why a failed run failed: the error's type and message

    @property
    def kind(self) -> str:
        """One word for what the folder holds: its job, or for a job whose folders are known by their method (SFT)
        the method: pretrain, full, lora, prompt_tuning, reward, ppo, ..."""
        job = JOBS.get(self.job)
        return self.method if job is not None and job.named_by_method and self.method else self.job

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def read_run(folder: str | Path) -> RunRecord | None:
    """The run's record, or None for a folder no run recorded itself in (a plain `save_pretrained` folder)."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    values = read_json(path)
    known = {item.name for item in fields(RunRecord)}
    return RunRecord(**{key: value for key, value in values.items() if key in known})


def write_run(folder: str | Path, record: RunRecord) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(record.to_json())


PEAK_RSS_RESET = Path("/proc/self/clear_refs")


def reset_peak_memory() -> None:
    """Start measuring this process's peak memory afresh, so each job of a multi-job process (the demo) reads its
    own: CUDA's peak allocated memory, and on Linux the peak resident set (VmHWM, reset by clear_refs)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        PEAK_RSS_RESET.write_text("5")
    except OSError:  # not Linux, or not allowed: the peak then counts from the process's start
        pass


def peak_memory_mib() -> float:
    """This process's peak memory since `reset_peak_memory`: torch.cuda.max_memory_allocated on CUDA, else the peak
    resident set size (VmHWM on Linux, getrusage's maximum elsewhere)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        import resource  # macOS: bytes (Windows has neither: let it say so)

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def start_run(
    folder: str | Path,
    job: str,
    *,
    method: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    started: float | None = None,
) -> RunRecord:
    """Record a run as running in `folder` (call on the main process only) and return its record. `started`: when
    the job began its work (Unix time; None: now, and its peak memory is counted from now)."""
    from . import __version__

    record = RunRecord(
        job,
        method,
        model_path=get_job(job).model_path,
        base_model=base_model,
        datasets=list(datasets or []),
        toolkit_version=__version__,
        started=time.time() if started is None else started,
    )
    write_run(folder, record)
    if started is None:
        reset_peak_memory()
    return record


def end_run(folder: str | Path, record: RunRecord, status: str, error: BaseException | None = None) -> RunRecord:
    """Record how the run ended (finished, stopped or failed, with the `error` that failed it), its wall time and this
    process's peak memory."""
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; one of {STATUSES}.")
    record.status, record.finished = status, time.time()
    record.error = None if error is None else f"{type(error).__name__}: {error}"
    record.seconds = record.finished - record.started
    record.peak_memory_mib = peak_memory_mib()
    write_run(folder, record)
    return record


def is_finished(folder: str | Path) -> bool:
    record = read_run(folder)
    return record is not None and record.status == "finished"


def model_dir(folder: str | Path, record: RunRecord | None = None) -> Path:
    """Where the run's model is: the folder itself, or the subfolder the record names (PPO: policy/). A record that
    names anything else (a path out of the run, a link) is refused: a folder received from someone else must not
    send eval or push to another folder on this machine."""
    record = record or read_run(folder)
    if record is None or record.model_path in (None, "."):
        return Path(folder)
    path = Path(folder) / str(record.model_path)
    if Path(str(record.model_path)).name != record.model_path or record.model_path == ".." or path.is_symlink():
        raise ValueError(
            f"{Path(folder) / RUN_FILE} names model_path {record.model_path!r}, which is not a folder inside the run "
            "(a run's model is the run folder itself, '.', or a subfolder of it such as 'policy'). Fix run.json or "
            "pass the model folder itself."
        )
    return path


def run_of_model(folder: str | Path) -> tuple[Path, RunRecord | None]:
    """The run folder a model folder belongs to, with its record: the folder itself, or for a PPO policy folder the
    run around it (whose record names this folder as its model)."""
    folder = Path(folder)
    record = read_run(folder)
    if record is None:
        parent = read_run(folder.parent)
        if parent is not None and parent.model_path not in (None, ".") and folder.name == parent.model_path:
            return folder.parent, parent
    return folder, record


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoint-<step> folders of a run, oldest step first."""
    folder = Path(output_dir)
    found = [path for path in folder.glob(f"{CHECKPOINT_PREFIX}-*") if path.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda path: int(path.name.split("-")[-1])) if folder.is_dir() else []


def rotate_checkpoints(output_dir: str | Path, limit: int, saved: str | Path) -> list[Path]:
    """Delete the older complete checkpoints so that `limit` remain, counting the one just `saved` (always kept,
    whatever its step: a run resumed from an earlier checkpoint saves below newer ones); a partial checkpoint, which
    `latest` skips, is neither counted nor deleted. Returns the deleted folders."""
    saved = Path(saved)
    others = [path for path in checkpoints(output_dir) if is_complete(path) and path.resolve() != saved.resolve()]
    deleted = others[: max(0, len(others) - (limit - 1))]
    for path in deleted:
        shutil.rmtree(path)
    return deleted


def is_complete(checkpoint: str | Path) -> bool:
    """A checkpoint is complete once its trainer_state.json exists and parses: every trainer writes it last
    (transformers' Trainer after the weights, optimizer, scheduler and random states; PPO the same), so a save cut
    short (a crash, SIGKILL) leaves a folder without one, or with a truncated one."""
    try:
        json.loads((Path(checkpoint) / TRAINER_STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return True


def prepare_output_dir(
    output_dir: str | Path,
    overwrite: bool,
    resume_from_checkpoint: str | None = None,
    *,
    max_steps: int = -1,
    main_process: bool = True,
) -> str | None:
    """Check the run folder before any work and return the checkpoint to resume from (None: a fresh run).

    A folder that holds another run is refused unless told to resume it or to overwrite it; an overwritten run
    starts fresh: the main process empties the folder first (`clear_run_folder`), so no file of the old run (an
    adapter, a checkpoint `latest` would resume, a PPO `policy/`) is read or pushed as the new run's. Resuming
    resolves `latest` (`resolve_checkpoint`) and refuses a checkpoint that ends its run (`max_steps` > its step
    trains on). A checkpoint of another folder starts a new run here, so this folder is checked as for a fresh run.
    Every process checks; only `main_process` removes or writes."""
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file: pass a folder (it is created if missing).")
    checkpoint = resolve_checkpoint(resume_from_checkpoint, folder)
    if checkpoint is not None:
        refuse_finished(checkpoint, max_steps)
    continuing_here = checkpoint is not None and Path(checkpoint).resolve().parent == folder.resolve()
    if not continuing_here and folder.is_dir():
        found = [name for name in RUN_MARKERS if (folder / name).exists()] + [
            path.name for path in checkpoints(folder)
        ]
        if found and not overwrite:
            raise ValueError(
                f"output_dir {output_dir} already holds a run ({', '.join(sorted(found)[:4])}). Nothing was written. "
                "Pick another --output_dir, resume it with --resume_from_checkpoint latest, "
                "or pass --overwrite_output_dir true to replace it"
                + (f" with a run resumed from {checkpoint}." if checkpoint else ".")
            )
        if found and main_process:
            clear_run_folder(folder)
    if main_process:
        check_writable(folder)
    return checkpoint


def clear_run_folder(folder: Path) -> None:
    """Remove everything in a run folder that --overwrite_output_dir replaces. Links are removed, never followed;
    a folder holding the working directory or a git repository is refused, as it cannot be a run's alone."""
    if Path.cwd().resolve().is_relative_to(folder.resolve()) or (folder / ".git").exists():
        raise ValueError(
            f"--overwrite_output_dir would empty {folder}, which holds the working directory or a git repository. "
            "Give each run a folder of its own (--output_dir outputs/<name>)."
        )
    entries = sorted(folder.iterdir())
    logger.warning(
        "--overwrite_output_dir: removing the old run in %s (%s)", folder, ", ".join(p.name for p in entries[:6])
    )
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def refuse_finished(checkpoint: str, max_steps: int) -> None:
    """Resuming the last checkpoint of a run would train a step past its end; say so instead."""
    state = read_json(Path(checkpoint) / TRAINER_STATE_FILE)
    step, planned = state.get("global_step"), state.get("max_steps")
    if step is None or planned is None or step < planned or max_steps > step:
        return
    raise ValueError(
        f"--resume_from_checkpoint {checkpoint}: that checkpoint ends its run (step {step} of {planned}), so there "
        "is nothing left to train; its weights are the finished model. To train longer, also pass a --max_steps "
        f"above {step}."
    )


RESUME_AFTER_FREEING = (
    "A checkpoint cut short is skipped by --resume_from_checkpoint latest: free space (a smaller --save_total_limit "
    "keeps fewer checkpoints) and resume with --resume_from_checkpoint latest."
)


def disk_full(folder: str | Path, error: BaseException, advice: str = RESUME_AFTER_FREEING) -> OSError | None:
    """The error to show for a write into `folder` that failed for lack of space (None for any other error), with
    `advice`: the libraries say "unexpected pos" or "basic_ios::clear", or name the OS error only. A library's
    wording counts only when the disk is in fact (nearly) full."""
    if not is_failed_write(error):
        return None
    free = shutil.disk_usage(Path(folder) if Path(folder).exists() else Path(folder).parent).free
    if not isinstance(error, OSError) and free > DISK_NEARLY_FULL:
        return None
    return OSError(
        errno.ENOSPC,
        f"The disk holding {folder} is full ({free / 2**20:,.1f} MiB free), so a file there could not be written "
        f"({type(error).__name__}: {str(error).splitlines()[0]}). {advice}",
    )


def lock_run_folder(output_dir: str | Path) -> int:
    """Hold the run folder for one run: an exclusive lock (the kernel's `flock`, on the folder itself) kept while the
    returned descriptor is open, and released however the process ends. A second run on the same --output_dir is
    refused before it reads, clears or writes anything there. Call on the main process; `os.close` releases it."""
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file: pass a folder (it is created if missing).")
    check_writable(folder)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ValueError(
            f"output_dir {output_dir} is in use by another run that is still going; nothing was read or written. "
            "Wait for it to end, or pick another --output_dir."
        ) from None
    return descriptor


def check_writable(folder: Path) -> None:
    """Create the folder and write into it now, so a read-only place fails before any work, not after."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"output_dir {folder} is not writable ({error.strerror}): pass a folder you can write."
        ) from None


def resolve_checkpoint(resume_from_checkpoint: str | None, output_dir: str | Path) -> str | None:
    """`latest` (or `true`) means the newest complete, undamaged checkpoint-* in output_dir (newer ones that never
    finished saving, or hold a damaged file, are skipped with a warning naming them); a path must be one."""
    if resume_from_checkpoint in (None, "", "false", "False"):
        return None
    if resume_from_checkpoint in ("latest", "true", "True"):
        found = checkpoints(output_dir)
        if not found:
            raise ValueError(f"--resume_from_checkpoint latest: no {CHECKPOINT_PREFIX}-* folder in {output_dir}.")
        skipped = []
        for path in reversed(found):
            problem = checkpoint_problem(path)
            if problem is None:
                if skipped:
                    warnings.warn(
                        f"Skipping {'; '.join(skipped)} (in {output_dir}). Resuming from {path.name}.", stacklevel=2
                    )
                return str(path)
            skipped.append(f"{path.name}: {problem}")
        raise ValueError(
            f"--resume_from_checkpoint latest: no complete {CHECKPOINT_PREFIX}-* folder in {output_dir} "
            f"({'; '.join(reversed(skipped))})."
        )
    if not Path(resume_from_checkpoint).is_dir():
        raise ValueError(f"--resume_from_checkpoint {resume_from_checkpoint}: no such checkpoint folder.")
    if (problem := checkpoint_problem(resume_from_checkpoint)) is not None:
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint}: {problem}; pass an earlier checkpoint, or latest."
        )
    return str(resume_from_checkpoint)


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed (None: it can): its save never finished (`is_complete`), or a weights or
    state file in it is cut short or damaged (safetensors: the header and the size it gives; torch's files: the zip
    directory at their end). A cheap look at each file, not a full read."""
    if not is_complete(checkpoint):
        return f"the save never finished (no {TRAINER_STATE_FILE})"
    for path in sorted(Path(checkpoint).rglob("*")):
        if path.suffix == ".safetensors" and not safetensors_whole(path):
            return f"{path.relative_to(checkpoint)} is cut short or damaged"
        if path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
            return f"{path.relative_to(checkpoint)} is cut short or damaged"
    return None


def safetensors_whole(path: Path) -> bool:
    """safetensors' own check: the header parses and the tensors cover the file exactly."""
    try:
        with safe_open(path, "pt"):
            return True
    except (OSError, SafetensorError):
        return False


# metrics.json opens with the same keys for every job, then holds the job's own metrics.
SUMMARY_HEAD = (
    "job",
    "method",
    "base_model",
    "datasets",
    "unit",  # what the job trained on (eval: scored): tokens, samples, pairs, episodes, examples
    "units",  # how many, over the whole run
    "units_per_second",  # their rate (a resumed run: over its last session)
    "headline",  # {metric: value}: the figures a reader looks for first
    "curves",  # {series: [[units so far, value], ...]}: loss, eval_loss, reward, kl, as the job logs them
    "seconds",  # wall time, from the run's opening (data and models included)
    "peak_memory_mib",
)


@dataclass
class JobResult:
    """What a job's `run` returns; `run_job` puts the run's record in front of it and writes it as metrics.json."""

    metrics: dict  # the job's own metrics
    units: float | None = None
    units_per_second: float | None = None
    headline: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[list[float]]] = field(default_factory=dict)


def job_summary(record: RunRecord, result: JobResult) -> dict:
    """metrics.json: the head (`SUMMARY_HEAD`), from the run's record and the job's result, then the job's metrics."""
    head = {
        "job": record.job,
        "method": record.method,
        "base_model": record.base_model,
        "datasets": list(record.datasets),
        "unit": get_job(record.job).unit,
        "units": result.units,
        "units_per_second": result.units_per_second,
        "headline": dict(result.headline),
        "curves": {name: [list(point) for point in points] for name, points in result.curves.items()},
        "seconds": record.seconds,
        "peak_memory_mib": record.peak_memory_mib,
    }
    return {**head, **{key: value for key, value in result.metrics.items() if key not in head}}


def write_summary(folder: str | Path, summary: dict) -> None:
    Path(folder, METRICS_FILE).write_text(json.dumps(summary, indent=2, default=str))


def read_summary(folder: str | Path) -> dict:
    """A run's metrics.json (of the run folder, or of the run a model folder such as a PPO policy belongs to);
    {} where none was written (a run that did not finish, a plain model folder)."""
    run, _ = run_of_model(folder)
    return read_json(run / METRICS_FILE)


def curve_ends(curve: list[list[float]], share: float = 0.2) -> tuple[float, float]:
    """The mean value over the first and over the last `share` of a curve's points (at least one point each)."""
    count = max(1, round(len(curve) * share))
    first, last = curve[:count], curve[-count:]
    return sum(point[1] for point in first) / len(first), sum(point[1] for point in last) / len(last)


def sampled_reward_headline(curves: dict[str, list[list[float]]]) -> dict[str, float]:
    """The headline of an online RL run: its mean sampled reward over the first and last fifth of its logged steps,
    and the largest KL it logged."""
    headline = {}
    if curves.get("reward"):
        headline["reward_first_fifth"], headline["reward_last_fifth"] = curve_ends(curves["reward"])
    if curves.get("kl"):
        headline["kl_max"] = max(point[1] for point in curves["kl"])
    return headline


def read_json(path: str | Path) -> dict:
    """A JSON file's object, or {} when it is missing; a damaged file is named."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"{path} is damaged ({error}): restore it, or leave its folder out.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an object.")
    return value


__all__ = [
    "SUMMARY_HEAD",
    "JobResult",
    "curve_ends",
    "disk_full",
    "job_summary",
    "read_summary",
    "sampled_reward_headline",
    "write_summary",
    "CURVES_FILE",
    "METRICS_FILE",
    "METRICS_LOG_FILE",
    "POLICY_DIR",
    "RESULTS_CHART",
    "RESULTS_JSON",
    "RESULTS_TABLE",
    "RUN_FILE",
    "RunRecord",
    "end_run",
    "is_finished",
    "lock_run_folder",
    "model_dir",
    "prepare_output_dir",
    "read_run",
    "resolve_checkpoint",
    "rotate_checkpoints",
    "run_of_model",
    "start_run",
]
