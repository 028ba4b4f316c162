"""The training runs behind `recipes/pretrain.py` and `recipes/sft.py`, callable from Python (and `toolkit demo`)."""

from pathlib import Path

import datasets
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments, set_seed

from ..adapters import METHODS, apply_lora, apply_prompt_tuning, describe_parameters, parameter_counts
from ..data import pack_for_language_modeling, tokenize_for_fine_tuning
from ..loading import model_context_length
from .arguments import AdapterArguments, DataArguments, ModelArguments, RunArguments
from .setup import build_model, build_tokenizer, load_training_splits
from .trainer import ToolkitTrainer, check_output_dir, push_finished_run, train_and_save


def prepare_pretraining(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, datasets.DatasetDict]:
    """Tokenizer, fresh model and packed train/validation blocks of a pretraining run (seeded)."""
    set_seed(training_args.seed)
    splits = load_training_splits(data_args)
    tokenizer = build_tokenizer(model_args, splits["train"], data_args.text_column)
    model = build_model(model_args, tokenizer, data_args.block_size)
    with training_args.main_process_first(desc="tokenizing and packing"):
        blocks = pack_for_language_modeling(
            splits,
            tokenizer,
            data_args.text_column,
            data_args.block_size,
            validation_fraction=data_args.validation_fraction,
            train_stride=data_args.block_stride,
            num_proc=data_args.preprocessing_num_workers,
        )
    return tokenizer, model, blocks


def pretrain(
    model_args: ModelArguments, data_args: DataArguments, run_args: RunArguments, training_args: TrainingArguments
) -> dict:
    """Train a GPT from scratch on packed blocks; saves model, tokenizer, curves and metrics.json in output_dir."""
    check_output_dir(
        training_args.output_dir, run_args.overwrite_output_dir, bool(training_args.resume_from_checkpoint)
    )
    tokenizer, model, blocks = prepare_pretraining(model_args, data_args, training_args)
    if training_args.process_index == 0:
        print(
            f"{model.__class__.__name__}: {model.num_parameters():,} parameters, vocabulary {len(tokenizer)}, "
            f"{len(blocks['train']):,} training blocks of {data_args.block_size} tokens"
        )
    trainer = ToolkitTrainer(
        model=model,
        args=training_args,
        train_dataset=blocks["train"],
        eval_dataset=blocks["validation"],
        processing_class=tokenizer,
    )
    metrics = train_and_save(trainer, training_args, plot=run_args.plot, tokens_per_sample=data_args.block_size)
    push_finished_run(run_args, training_args.output_dir, metrics, datasets=[data_args.dataset], method="pretrain")
    return metrics


def adapt(
    model: PreTrainedModel, model_args: ModelArguments, adapter_args: AdapterArguments, block_size: int
) -> PreTrainedModel:
    """Wrap `model` for the fine-tuning method: unchanged (full), LoRA, or a soft prompt."""
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


def fine_tune(
    model_args: ModelArguments,
    data_args: DataArguments,
    adapter_args: AdapterArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
) -> dict:
    """Fine-tune a pretrained causal LM (full, LoRA or prompt tuning); saves the model or adapter in output_dir,
    and with `merge_adapter` the merged LoRA model in output_dir/merged."""
    check_output_dir(
        training_args.output_dir, run_args.overwrite_output_dir, bool(training_args.resume_from_checkpoint)
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
    if training_args.process_index == 0:
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
    if "stopped_by" not in metrics and adapter_args.merge_adapter and adapter_args.method == "lora":
        if trainer.is_world_process_zero():
            merged_dir = Path(training_args.output_dir) / "merged"
            model.merge_and_unload().save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
    push_finished_run(
        run_args,
        training_args.output_dir,
        metrics,
        base_model=model_args.model_name_or_path,
        datasets=[data_args.dataset],
    )
    return metrics
