r"""Supervised fine-tuning of a pretrained causal LM (GPT-2 by default) with TRL's `SFTTrainer`: full fine-tuning,
LoRA on the attention projections, or soft prompt tuning, as `--method` says.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

parse -> data (prompt/completion columns: completion-only loss; a text column: language modeling) -> model (+ adapter)
-> SFTTrainer -> train -> save (model or adapter, curves; merged/ with --merge_adapter); `run_job` records and pushes.

`SFTConfig` brings TRL's settings (`max_length`, `packing`, `padding_free`, `completion_only_loss`,
`dataset_num_proc`); the toolkit adds its extras on top (perplexity, token-weighted eval loss, curves, SIGTERM,
`--resume_from_checkpoint latest`).
"""

import logging
from pathlib import Path

import datasets
from transformers import PreTrainedModel
from trl import SFTConfig

from ..adapters import apply_lora, apply_prompt_tuning, describe_parameters, parameter_counts
from ..loading import model_context_length
from ..runs import MERGED_DIR, JobResult
from ..training import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    RunArguments,
    ToolkitSFTTrainer,
    per_step,
    train_and_save,
    training_result,
)
from ..training.setup import build_model, build_tokenizer, load_training_splits
from .common import OpenedRun

logger = logging.getLogger(__name__)

ARGUMENTS = (ModelArguments, DataArguments, AdapterArguments, RunArguments, SFTConfig)
HEADLINE = ("eval_loss", "eval_perplexity", "train_loss")
TEXT_FIELD = "text"  # SFTConfig's default dataset_text_field


def adapt(
    model: PreTrainedModel, model_args: ModelArguments, adapter_args: AdapterArguments, max_length: int | None
) -> PreTrainedModel:
    """Wrap `model` for the fine-tuning method (checked by the run's opening): unchanged (full), LoRA, or a soft
    prompt."""
    if adapter_args.method == "lora":
        return apply_lora(model, **adapter_args.lora_options())
    if adapter_args.method == "prompt_tuning":
        if adapter_args.num_virtual_tokens < 1:
            raise ValueError(
                f"--num_virtual_tokens {adapter_args.num_virtual_tokens} leaves prompt tuning nothing to train: "
                "pass at least 1."
            )
        context = model_context_length(model)
        if context is not None and max_length is not None and max_length + adapter_args.num_virtual_tokens > context:
            raise ValueError(
                f"--max_length {max_length} plus --num_virtual_tokens {adapter_args.num_virtual_tokens} exceeds the "
                f"model's context ({context} positions): lower one of them."
            )
        return apply_prompt_tuning(
            model,
            num_virtual_tokens=adapter_args.num_virtual_tokens,
            init_text=adapter_args.prompt_tuning_init_text,
            tokenizer_name_or_path=model_args.tokenizer or model_args.model_name_or_path,
        )
    return model


def sft_columns(split: datasets.Dataset, data_args: DataArguments) -> datasets.Dataset:
    """The columns SFTTrainer reads: `prompt` and `completion` (completion-only loss), or `text`."""
    if data_args.prompt_column and data_args.completion_column:
        names = {data_args.prompt_column: "prompt", data_args.completion_column: "completion"}
    else:
        names = {data_args.text_column: TEXT_FIELD}
    split = split.select_columns(list(names))
    return split.rename_columns({old: new for old, new in names.items() if old != new})


def run(
    opened: OpenedRun,
    model_args: ModelArguments,
    data_args: DataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: SFTConfig,
) -> JobResult:
    """Fine-tune a pretrained causal LM (full, LoRA or prompt tuning); saves the model or adapter in output_dir,
    and with `merge_adapter` the merged LoRA model in output_dir/merged."""
    if model_args.model_name_or_path is None:
        raise ValueError(
            "Fine-tuning needs a pretrained model: pass --model_name_or_path (e.g. openai-community/gpt2)."
        )
    if config.dataset_text_field != TEXT_FIELD:
        raise ValueError(
            f"--dataset_text_field {config.dataset_text_field!r}: this recipe names its columns with --text_column "
            "(or --prompt_column and --completion_column), as pretraining does."
        )
    splits = load_training_splits(data_args)
    trust = config.trust_remote_code
    tokenizer = build_tokenizer(model_args, splits["train"], data_args.text_column, trust_remote_code=trust)
    model = build_model(model_args, tokenizer, config.max_length, "--max_length", trust_remote_code=trust)
    model = adapt(model, model_args, adapter_args, config.max_length)
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"--method {adapter_args.method} left nothing of {model_args.model_name_or_path} to train.")
    if opened.main_process:
        logger.info(f"{adapter_args.method}: {describe_parameters(model)}")
    splits = datasets.DatasetDict({name: sft_columns(split, data_args) for name, split in splits.items()})
    trainer = ToolkitSFTTrainer(
        model=model,
        args=config,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        processing_class=tokenizer,
    )
    trainable, total = parameter_counts(model)
    counts = dict(trainable_parameters=trainable, total_parameters=total)
    opened.start()
    metrics = train_and_save(trainer, config, plot=run_args.plot, extra_metrics=counts)
    if adapter_args.merge_adapter and adapter_args.method == "lora" and opened.main_process:
        merged_dir = Path(config.output_dir) / MERGED_DIR
        model.merge_and_unload().save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
    return training_result(trainer, metrics, per_step(config), HEADLINE, opened.resumed_step)
