r"""Fine-tune a pretrained causal LM (GPT-2 by default): full fine-tuning, LoRA on the attention projections, or
soft prompt tuning, as the config's `method` says.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/sft.py --config recipes/configs/sft/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--method prompt_tuning --output_dir outputs/pt`.
"""

import sys
from pathlib import Path

from transformers import DataCollatorForSeq2Seq, TrainingArguments, set_seed
from trl import TrlParser

from toolkit.adapters import METHODS, apply_lora, apply_prompt_tuning, describe_parameters, parameter_counts
from toolkit.data import tokenize_for_fine_tuning
from toolkit.loading import model_context_length
from toolkit.training import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    RunArguments,
    ToolkitTrainer,
    build_model,
    build_tokenizer,
    check_output_dir,
    load_training_splits,
    train_and_save,
)


def adapt(model, model_args: ModelArguments, adapter_args: AdapterArguments, block_size: int):
    if adapter_args.method not in METHODS:
        raise ValueError(f"Unknown method {adapter_args.method!r}; choose one of {METHODS}.")
    if adapter_args.method == "lora":
        return apply_lora(
            model,
            r=adapter_args.lora_r,
            alpha=adapter_args.lora_alpha,
            dropout=adapter_args.lora_dropout,
            target_modules=adapter_args.lora_target_modules,
            include_attention_output=adapter_args.lora_attention_output,
        )
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


def build_parser() -> TrlParser:
    return TrlParser((ModelArguments, DataArguments, AdapterArguments, RunArguments, TrainingArguments), prog="sft.py")


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, adapter_args, run_args, training_args = build_parser().parse_args_and_config(argv)
    check_output_dir(
        training_args.output_dir, run_args.overwrite_output_dir, bool(training_args.resume_from_checkpoint)
    )
    if model_args.model_name_or_path is None:
        raise ValueError(
            "sft.py fine-tunes a pretrained model: pass --model_name_or_path (e.g. openai-community/gpt2)."
        )
    set_seed(training_args.seed)

    splits = load_training_splits(data_args, training_args.seed)

    tokenizer = build_tokenizer(model_args, splits["train"], data_args.text_column)
    model = adapt(
        build_model(model_args, tokenizer, data_args.block_size), model_args, adapter_args, data_args.block_size
    )
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
    metrics = train_and_save(trainer, training_args, plot=run_args.plot, extra_metrics=counts)
    if "stopped_by" in metrics:
        return metrics
    if trainer.is_world_process_zero():
        if adapter_args.merge_adapter and adapter_args.method == "lora":
            merged_dir = Path(training_args.output_dir) / "merged"
            model.merge_and_unload().save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
