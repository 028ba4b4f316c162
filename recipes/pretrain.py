r"""Pretrain a GPT from scratch: our GPT (any preset or shape) or a GPT-2-architecture model.

Launch:
    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/pretrain.py --config recipes/configs/pretrain/tiny_cpu.yaml

Any YAML key can be overridden on the command line, e.g. `--max_steps 100 --output_dir outputs/try`.
"""

import sys

from transformers import TrainingArguments, set_seed
from trl import TrlParser

from toolkit.data import pack_for_language_modeling
from toolkit.training import (
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


def build_parser() -> TrlParser:
    return TrlParser((ModelArguments, DataArguments, RunArguments, TrainingArguments), prog="pretrain.py")


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, run_args, training_args = build_parser().parse_args_and_config(argv)
    check_output_dir(
        training_args.output_dir, run_args.overwrite_output_dir, bool(training_args.resume_from_checkpoint)
    )
    set_seed(training_args.seed)

    splits = load_training_splits(data_args, training_args.seed)

    tokenizer = build_tokenizer(model_args, splits["train"], data_args.text_column)
    model = build_model(model_args, tokenizer, data_args.block_size)
    with training_args.main_process_first(desc="tokenizing and packing"):
        blocks = pack_for_language_modeling(
            splits,
            tokenizer,
            data_args.text_column,
            data_args.block_size,
            validation_fraction=data_args.validation_fraction,
            num_proc=data_args.preprocessing_num_workers,
        )
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
    if trainer.is_world_process_zero():
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    if training_args.push_to_hub and "stopped_by" not in metrics:
        trainer.push_to_hub()
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
