r"""Supervised fine-tuning of a pretrained causal LM (GPT-2 by default): full fine-tuning, LoRA on the attention
projections, or soft prompt tuning, as `--method` says.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

parse -> data -> model (+ adapter) -> trainer -> train -> save (model or adapter, curves, metrics.json, run.json;
merged/ with --merge_adapter) -> push.
"""

from pathlib import Path

from transformers import DataCollatorForSeq2Seq, PreTrainedModel, TrainingArguments, set_seed
from trl import TrlParser

from ..adapters import METHODS, apply_lora, apply_prompt_tuning, describe_parameters, parameter_counts
from ..data import tokenize_for_fine_tuning
from ..loading import model_context_length
from ..runs import MERGED_DIR, prepare_output_dir
from ..training import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    RunArguments,
    ToolkitTrainer,
    train_and_save,
)
from ..training.setup import build_model, build_tokenizer, load_training_splits
from .common import push_finished_run, recorded_run


def build_parser() -> TrlParser:
    return TrlParser((ModelArguments, DataArguments, AdapterArguments, RunArguments, TrainingArguments), prog="sft")


def adapt(
    model: PreTrainedModel, model_args: ModelArguments, adapter_args: AdapterArguments, block_size: int
) -> PreTrainedModel:
    """Wrap `model` for the fine-tuning method: unchanged (full), LoRA, or a soft prompt."""
    if adapter_args.method not in METHODS:
        raise ValueError(f"Unknown method {adapter_args.method!r}; choose one of {METHODS}.")
    if adapter_args.method == "lora":
        return apply_lora(model, **adapter_args.lora_options())
    if adapter_args.method == "prompt_tuning":
        context = model_context_length(model)
        if context is not None and block_size + adapter_args.num_virtual_tokens > context:
            raise ValueError(
                f"--block_size {block_size} plus --num_virtual_tokens {adapter_args.num_virtual_tokens} exceeds the "
                f"model's context ({context} positions): lower one of them."
            )
        return apply_prompt_tuning(
            model,
            num_virtual_tokens=adapter_args.num_virtual_tokens,
            init_text=adapter_args.prompt_tuning_init_text,
            tokenizer_name_or_path=model_args.tokenizer or model_args.model_name_or_path,
        )
    return model


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
) -> dict:
    """Fine-tune a pretrained causal LM (full, LoRA or prompt tuning); saves the model or adapter in output_dir,
    and with `merge_adapter` the merged LoRA model in output_dir/merged."""
    main_process = training_args.process_index == 0
    output_dir = training_args.output_dir
    prepare_output_dir(
        output_dir, run_args.overwrite_output_dir, bool(training_args.resume_from_checkpoint), main_process
    )
    if model_args.model_name_or_path is None:
        raise ValueError(
            "Fine-tuning needs a pretrained model: pass --model_name_or_path (e.g. openai-community/gpt2)."
        )
    set_seed(training_args.seed)
    splits = load_training_splits(data_args)
    tokenizer = build_tokenizer(model_args, splits["train"], data_args.text_column)
    model = adapt(
        build_model(model_args, tokenizer, data_args.block_size), model_args, adapter_args, data_args.block_size
    )
    if main_process:
        print(f"{adapter_args.method}: {describe_parameters(model)}")

    with training_args.main_process_first(desc="tokenizing"):
        tokenized = {
            name: tokenize_for_fine_tuning(
                split,
                tokenizer,
                max_length=data_args.block_size,
                text_column=data_args.text_column,
                prompt_column=data_args.prompt_column,
                completion_column=data_args.completion_column,
                num_proc=data_args.preprocessing_num_workers,
            )
            for name, split in splits.items()
        }
    trainer = ToolkitTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
    )
    trainable, total = parameter_counts(model)
    counts = dict(method=adapter_args.method, trainable_parameters=trainable, total_parameters=total)
    record = dict(method=adapter_args.method, base_model=model_args.model_name_or_path, datasets=[data_args.dataset])
    with recorded_run(output_dir, "sft", main_process=main_process, **record) as outcome:
        metrics = train_and_save(trainer, training_args, plot=run_args.plot, extra_metrics=counts)
        outcome.stopped = "stopped_by" in metrics
        if not outcome.stopped and adapter_args.merge_adapter and adapter_args.method == "lora" and main_process:
            merged_dir = Path(output_dir) / MERGED_DIR
            model.merge_and_unload().save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
    if not outcome.stopped:
        push_finished_run(run_args, output_dir, main_process)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, training_args = build_parser().parse_args_and_config(argv)
    metrics = run(model_args, data_args, adapter_args, run_args, training_args)
    if training_args.process_index == 0:
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()})
    return metrics
