"""What every job does around its work, written once for all of them (`run_job`): parse its arguments, open the
run (the output folder checked, the checkpoint to resume resolved, `--method` checked, the seed set), run it, record
it in run.json, write its summary as metrics.json, push it when asked, and turn a stop request into the exit status
a scheduler reads; and the SFT model an alignment job starts from."""

import importlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from accelerate import PartialState
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel, TrainingArguments, set_seed
from trl import TrlParser

from .. import stopping
from ..adapters import lora_config, merge_adapter
from ..jobs import Job, get_job
from ..loading import load_causal_lm, load_tokenizer
from ..parsing import argument_parser, configure_logging
from ..runs import (
    SFT_MERGED_DIR,
    TRAINER_STATE_FILE,
    RunRecord,
    disk_full,
    end_run,
    job_summary,
    lock_run_folder,
    peak_memory_mib,
    prepare_output_dir,
    read_json,
    reset_peak_memory,
    start_run,
    write_summary,
)
from ..stopping import JobStopped
from ..training.arguments import AdapterArguments, RunArguments

logger = logging.getLogger(__name__)
SUMMARY_LINE_FIGURES = 6  # headline figures in a run's closing log line (an evaluation has one per model and task)


@dataclass
class OpenedRun:
    """A job's run once opened: where it writes, whether this is the main process, what it resumes, when it began."""

    job: Job
    arguments: Sequence  # the job's parsed dataclasses
    output_dir: str
    main_process: bool
    checkpoint: str | None  # the checkpoint to resume (None: a fresh run)
    started: float  # Unix time the job began: its wall time and peak memory count data and models too
    resumed_step: int = 0  # the step the checkpoint had reached (read now: a rotating save may delete it later)
    description: dict = field(default_factory=dict)  # method, base_model, datasets, as `start` recorded them
    record: RunRecord | None = None  # run.json's record once `start` wrote it (main process)
    lock: int | None = None  # the run folder's lock, held by the main process until `release`

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def start(self, datasets: Sequence[str] | None = None):
        """Record the run as running in run.json, once its data and models have loaded: a run that fails on bad
        input leaves no record, so the corrected command can take the same output_dir. What it records comes from
        the job's flags (`method`, `model_name_or_path`, `dataset`); a job reading several sources names them."""
        if datasets is None:
            dataset = setting(self.arguments, "dataset")
            datasets = [] if dataset is None else [dataset]
        method, base_model = setting(self.arguments, "method"), setting(self.arguments, "model_name_or_path")
        self.description = dict(method=method, base_model=base_model, datasets=list(datasets))
        if self.main_process:
            self.record = start_run(self.output_dir, self.job.name, started=self.started, **self.description)


def setting(arguments: Sequence, name: str, default=None):
    """`name` from the first of a job's parsed dataclasses that has it."""
    return next((getattr(group, name) for group in arguments if hasattr(group, name)), default)


def check_settings(arguments: Sequence) -> None:
    """Refuse, by flag, settings that can only produce garbage: a number that is not finite (`--learning_rate inf`,
    `--beta nan`), no optimizer step (`--gradient_accumulation_steps 0`), no training step (`--max_steps -5
    --num_train_epochs 0`)."""
    for group in arguments:
        for item in fields(group):
            value = getattr(group, item.name)
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(number, float) and not math.isfinite(number) for number in values):
                default = "" if item.default is MISSING else f" (default {item.default})"
                raise ValueError(f"--{item.name} {value} is not a finite number: pass a number{default}.")
    training = next((group for group in arguments if isinstance(group, TrainingArguments)), None)
    if training is None:
        return
    if training.gradient_accumulation_steps < 1:
        raise ValueError(
            f"--gradient_accumulation_steps must be at least 1, got {training.gradient_accumulation_steps}."
        )
    if training.max_steps <= 0 and training.num_train_epochs <= 0:
        raise ValueError(
            f"--max_steps {training.max_steps} with --num_train_epochs {training.num_train_epochs} trains no step: "
            "pass a positive --max_steps, or --num_train_epochs above 0 (with --max_steps -1)."
        )


def open_run(job: Job, arguments: Sequence) -> OpenedRun:
    """The opening of every job: check `--method`, refuse an output_dir that holds another run (unless overwriting
    or resuming it), resolve the checkpoint to resume (`latest` included) into `resume_from_checkpoint`, seed
    everything with `seed`, and start the run's clock and peak-memory count."""
    started = time.time()
    reset_peak_memory()
    check_settings(arguments)
    method = setting(arguments, "method")
    if job.methods and method not in job.methods:
        raise ValueError(f"Unknown method {method!r} for {job.name}: pass --method {' or '.join(job.methods)}.")
    state = PartialState(cpu=bool(setting(arguments, "use_cpu", False)))
    training = next((group for group in arguments if isinstance(group, TrainingArguments)), None)
    output_dir = str(setting(arguments, "output_dir"))
    lock = lock_run_folder(output_dir) if state.is_main_process else None
    try:
        checkpoint = prepare_output_dir(
            output_dir,
            setting(arguments, "overwrite_output_dir", False),
            None if training is None else training.resume_from_checkpoint,
            max_steps=-1 if training is None else training.max_steps,
            main_process=state.is_main_process,
        )
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    if training is not None:
        training.resume_from_checkpoint = checkpoint
        set_seed(training.seed)
        if training.hub_token:
            # Trainer pickles its arguments into training_args.bin in the run folder and every checkpoint; the token
            # goes where huggingface_hub reads it (Trainer's push_to_hub included) instead.
            os.environ["HF_TOKEN"], training.hub_token = training.hub_token, None
    resumed_step = read_json(Path(checkpoint, TRAINER_STATE_FILE))["global_step"] if checkpoint else 0
    return OpenedRun(job, arguments, output_dir, state.is_main_process, checkpoint, started, resumed_step, lock=lock)


def execute(name: str, *arguments) -> dict:
    """Run the job `name` on its parsed arguments (its pipeline's `ARGUMENTS`, in order), from opening the run to
    pushing it; return its summary, which the main process writes as metrics.json."""
    job = get_job(name)
    pipeline = importlib.import_module(job.pipeline)
    opened = open_run(job, arguments)
    try:
        status, error = "failed", None
        try:
            result = pipeline.run(opened, *arguments)
            status = "finished"
        except JobStopped:
            status = "stopped"
            raise
        except BaseException as failure:
            if (signal_name := stopping.requested()) is not None:
                # Another process stopped first and left this one's collective: the run stopped, it did not fail.
                status = "stopped"
                raise JobStopped(signal_name, f"while stopping ({type(failure).__name__}: {failure})") from failure
            error = disk_full(opened.output_dir, failure) or failure
            if error is not failure:
                raise error from failure
            raise
        finally:
            if opened.record is not None:
                end_run(opened.output_dir, opened.record, status, error)
        record = opened.record or RunRecord(  # the other processes (and a job that never started) keep no run.json
            name, seconds=time.time() - opened.started, peak_memory_mib=peak_memory_mib(), **opened.description
        )
        summary = job_summary(record, result)
        if opened.main_process:
            write_summary(opened.output_dir, summary)
            push_finished_run(arguments, opened.output_dir)
        return summary
    finally:
        opened.release()


def job_parser(name: str) -> TrlParser:
    """The command line of a job: its dataclasses, `--config file.yaml` with flags overriding it."""
    return argument_parser(importlib.import_module(get_job(name).pipeline).ARGUMENTS, name)


def run_job(name: str, argv: list[str] | None = None) -> dict:
    """`toolkit <name>` and `recipes/<name>.py`: parse the command line, run the job, show its summary; a job
    stopped by a signal exits with 128 + the signal's number."""
    configure_logging()
    arguments = job_parser(name).parse_args_and_config(argv)
    with exit_on_stop():
        summary = execute(name, *arguments)
    if PartialState().is_main_process:
        logger.info(summary_line(summary))
    return summary


def summary_line(summary: dict) -> str:
    """One line of a run's summary: what it trained on and its headline figures."""
    parts = [summary["job"]]
    if summary["units"] is not None:
        rate = f" ({summary['units_per_second']:,.1f}/s)" if summary["units_per_second"] else ""
        parts.append(f"{summary['units']:,.0f} {summary['unit']}{rate}")
    figures = [f"{name} {value:.4g}" for name, value in summary["headline"].items() if isinstance(value, float | int)]
    shown = figures[:SUMMARY_LINE_FIGURES]
    if len(figures) > len(shown):
        shown.append(f"{len(figures) - len(shown)} more in metrics.json")
    parts += shown
    if summary["seconds"] is not None:
        parts.append(f"{summary['seconds']:.0f} s")
    return ", ".join(parts)


@contextmanager
def exit_on_stop() -> Iterator[None]:
    """A job stopped by a signal ends its command with 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C),
    after saying where it stopped."""
    try:
        yield
    except JobStopped as stop:
        logger.warning(str(stop))
        raise SystemExit(stop.exit_code) from None


def push_finished_run(arguments: Sequence, output_dir: str) -> None:
    """Upload a finished run when `push_repo_id` is set (call on the main process); the card reads the run's files."""
    run_args = next((group for group in arguments if isinstance(group, RunArguments)), None)
    if run_args is None or run_args.push_repo_id is None:
        return
    from ..hub import push_folder

    push_folder(output_dir, run_args.push_repo_id, private=run_args.push_private, dry_run=run_args.push_dry_run)


def load_sft_model(
    name_or_path: str, adapter_args: AdapterArguments, output_dir: str
) -> tuple[PreTrainedModel, LoraConfig | None]:
    """The SFT model an alignment job (PPO, DPO, GRPO, RLOO) starts from, and the config of the fresh LoRA it trains
    when method=lora (None for full training). An SFT LoRA adapter is merged first and the merged model saved in
    output_dir/sft-merged, which the new adapter then names as its base (so it loads on the right weights). TRL's
    trainers take the config as `peft_config`: their reference is then the same weights with the adapter disabled,
    with no second copy (handed a ready PeftModel, TRL would copy its adapter as a "ref" adapter)."""
    model = load_causal_lm(name_or_path, device="cpu")
    if isinstance(model, PeftModel):
        model = merge_adapter(model)
        merged_dir = Path(output_dir) / SFT_MERGED_DIR
        if PartialState().is_main_process:
            model.save_pretrained(merged_dir)
            load_tokenizer(name_or_path).save_pretrained(merged_dir)
        model.name_or_path = str(merged_dir)
    if adapter_args.method == "full":
        return model.train(), None
    # Dropout stays off: log-probs must match between the policy and its reference (and rollout and update).
    return model.train(), lora_config(model, **{**adapter_args.lora_options(), "dropout": 0.0})


def load_sft_policy(name_or_path: str, adapter_args: AdapterArguments, output_dir: str) -> PreTrainedModel:
    """`load_sft_model`'s model, wrapped in its fresh LoRA when method=lora (our PPOTrainer takes the policy ready)."""
    model, config = load_sft_model(name_or_path, adapter_args, output_dir)
    return model if config is None else get_peft_model(model, config).train()
