r"""Supervised fine-tuning of a pretrained causal LM (GPT-2 by default) with TRL's `SFTTrainer`: full fine-tuning,
LoRA on the attention projections, or soft prompt tuning, as `--method` says.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

parse -> data (prompt/completion columns: completion-only loss; a text column: language modeling) -> model (+ adapter)
-> SFTTrainer -> train -> save (model or adapter, curves, metrics.json, run.json; merged/ with --merge_adapter)
-> push.

`SFTConfig` brings TRL's settings (`max_length`, `packing`, `padding_free`, `completion_only_loss`,
`dataset_num_proc`); the toolkit adds its extras on top (perplexity, token-weighted eval loss, curves, SIGTERM,
`--resume_from_checkpoint latest`).
"""

from pathlib import Path

import datasets
from transformers import PreTrainedModel
from trl import SFTConfig, TrlParser

from ..adapters import METHODS, apply_lora, apply_prompt_tuning, describe_parameters, parameter_counts
from ..loading import model_context_length
from ..parsing import argument_parser
from ..runs import MERGED_DIR
from ..training import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    RunArguments,
    ToolkitSFTTrainer,
    train_and_save,
)
from ..training.setup import build_model, build_tokenizer, load_training_splits
from .common import exit_on_stop, open_training_run, push_finished_run, recorded_run

TEXT_FIELD = "text"  # SFTConfig's default dataset_text_field


def build_parser() -> TrlParser:
    return argument_parser((ModelArguments, DataArguments, AdapterArguments, RunArguments, SFTConfig), "sft")


def adapt(
    model: PreTrainedModel, model_args: ModelArguments, adapter_args: AdapterArguments, max_length: int | None
) -> PreTrainedModel:
    """Wrap `model` for the fine-tuning method: unchanged (full), LoRA, or a soft prompt."""
    if adapter_args.method not in METHODS:
        raise ValueError(f"Unknown method {adapter_args.method!r}; choose one of {METHODS}.")
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
    model_args: ModelArguments,
    data_args: DataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    config: SFTConfig,
) -> dict:
    """Fine-tune a pretrained causal LM (full, LoRA or prompt tuning); saves the model or adapter in output_dir,
    and with `merge_adapter` the merged LoRA model in output_dir/merged."""
    main_process = config.process_index == 0
    output_dir = config.output_dir
    opened = open_training_run(config, run_args)
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
    if main_process:
        print(f"{adapter_args.method}: {describe_parameters(model)}")
    splits = datasets.DatasetDict({name: sft_columns(split, data_args) for name, split in splits.items()})
    trainer = ToolkitSFTTrainer(
        model=model,
        args=config,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        processing_class=tokenizer,
    )
    trainable, total = parameter_counts(model)
    counts = dict(method=adapter_args.method, trainable_parameters=trainable, total_parameters=total)
    record = dict(method=adapter_args.method, base_model=model_args.model_name_or_path, datasets=[data_args.dataset])
    with recorded_run(output_dir, "sft", main_process=main_process, started=opened.started, **record):
        metrics = train_and_save(trainer, config, plot=run_args.plot, extra_metrics=counts)
        if adapter_args.merge_adapter and adapter_args.method == "lora" and main_process:
            merged_dir = Path(output_dir) / MERGED_DIR
            model.merge_and_unload().save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
    push_finished_run(run_args, output_dir, main_process)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, config = build_parser().parse_args_and_config(argv)
    with exit_on_stop():
        metrics = run(model_args, data_args, adapter_args, run_args, config)
    if config.process_index == 0:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics
