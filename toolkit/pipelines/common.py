"""What every pipeline does around its job: open the run (its output folder checked, the checkpoint to resume
resolved, the seed set), record it in its folder, push it when it is done, turn a stop request into the exit status
a scheduler reads, and load the SFT model an alignment job starts from."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel, TrainingArguments, set_seed

from ..adapters import lora_config, merge_adapter
from ..loading import load_causal_lm, load_tokenizer
from ..runs import SFT_MERGED_DIR, RunRecord, end_run, prepare_output_dir, reset_peak_memory, start_run
from ..stopping import JobStopped
from ..training.arguments import AdapterArguments, RunArguments


@dataclass(frozen=True)
class OpenedRun:
    checkpoint: str | None  # the checkpoint to resume (None: a fresh run)
    started: float  # Unix time the job began: its run's wall time and peak memory count data and models too


def open_training_run(config: TrainingArguments, run_args: RunArguments) -> OpenedRun:
    """The opening of every training job: refuse an output_dir that holds another run (unless overwriting or
    resuming it), resolve the checkpoint to resume (`latest` included) into `config.resume_from_checkpoint`, seed
    everything with `config.seed`, and start the run's clock and peak-memory count (pass `started` to
    `recorded_run`)."""
    started = time.time()
    reset_peak_memory()
    config.resume_from_checkpoint = prepare_output_dir(
        config.output_dir,
        run_args.overwrite_output_dir,
        config.resume_from_checkpoint,
        max_steps=config.max_steps,
        main_process=config.process_index == 0,
    )
    set_seed(config.seed)
    return OpenedRun(config.resume_from_checkpoint, started)


@contextmanager
def recorded_run(
    output_dir: str,
    job: str,
    *,
    main_process: bool,
    method: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    started: float | None = None,
) -> Iterator[None]:
    """Write run.json as running, then as finished, stopped (a signal) or failed (any other exception). `started`:
    when the job began (`OpenedRun.started`; None: now)."""
    record: RunRecord | None = None
    if main_process:
        record = start_run(output_dir, job, method=method, base_model=base_model, datasets=datasets, started=started)
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


def load_sft_model(
    name_or_path: str, adapter_args: AdapterArguments, output_dir: str, job: str
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
    if adapter_args.method != "lora":
        raise ValueError(f"{job} trains the policy with --method full or lora, not {adapter_args.method!r}.")
    # Dropout stays off: log-probs must match between the policy and its reference (and rollout and update).
    return model.train(), lora_config(model, **{**adapter_args.lora_options(), "dropout": 0.0})


def load_sft_policy(name_or_path: str, adapter_args: AdapterArguments, output_dir: str, job: str) -> PreTrainedModel:
    """`load_sft_model`'s model, wrapped in its fresh LoRA when method=lora (our PPOTrainer takes the policy ready)."""
    model, config = load_sft_model(name_or_path, adapter_args, output_dir, job)
    return model if config is None else get_peft_model(model, config).train()
