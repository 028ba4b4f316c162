r"""Pretraining a GPT from scratch (our GPT, any preset or shape, or a GPT-2-architecture model) on packed blocks.

    accelerate launch --config_file accelerate_configs/cpu.yaml \
        recipes/pretrain.py --config recipes/configs/pretrain/tiny_cpu.yaml

parse -> data (load, tokenizer, pack) -> model -> Trainer -> train -> save (model, tokenizer, curves), then
`toolkit.pipelines.common.run_job` records the run (run.json, metrics.json) and pushes it.
"""

import logging

from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .._compat import DatasetEpochCallback
from ..data import RandomBlocks, TokenBlocks, pack_for_language_modeling, pack_streams
from ..runs import JobResult
from ..training import (
    PretrainDataArguments,
    PretrainModelArguments,
    RunArguments,
    ToolkitTrainer,
    per_step,
    train_and_save,
    training_result,
)
from ..training.setup import build_model, build_tokenizer, load_training_splits, streamed_token_streams
from .common import OpenedRun

logger = logging.getLogger(__name__)

ARGUMENTS = (PretrainModelArguments, PretrainDataArguments, RunArguments, TrainingArguments)
HEADLINE = ("eval_loss", "eval_perplexity", "train_loss")


def prepare(
    model_args: PretrainModelArguments, data_args: PretrainDataArguments, training_args: TrainingArguments
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, dict[str, TokenBlocks]]:
    """Tokenizer, fresh model and packed train/validation blocks of a pretraining run (seeded)."""
    random_blocks = data_args.block_sampling == "random"
    if random_blocks and training_args.dataloader_persistent_workers and training_args.dataloader_num_workers > 0:
        raise ValueError(
            "--block_sampling random gives the training dataset each new epoch, which dataloader workers kept "
            "across epochs would never see: drop --dataloader_persistent_workers."
        )
    set_seed(training_args.seed)
    trust = model_args.trust_remote_code
    # Streamed rows are read once, as they are tokenized: there is no training text to build a tokenizer from.
    splits = None if data_args.dataset_streaming else load_training_splits(data_args)
    train = None if splits is None else splits["train"]
    tokenizer = build_tokenizer(model_args, train, data_args.text_column, trust_remote_code=trust)
    model = build_model(model_args, tokenizer, data_args.block_size, trust_remote_code=trust)
    data_seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    layout = dict(
        validation_fraction=data_args.validation_fraction,
        train_stride=data_args.block_stride,
        random_offsets_seed=data_seed if random_blocks else None,
    )
    with training_args.main_process_first(desc="tokenizing and packing"):
        if data_args.dataset_streaming:
            blocks = pack_streams(streamed_token_streams(data_args, tokenizer), data_args.block_size, **layout)
        else:
            blocks = pack_for_language_modeling(
                splits,
                tokenizer,
                data_args.text_column,
                data_args.block_size,
                num_proc=data_args.dataset_num_proc,
                **layout,
            )
    return tokenizer, model, blocks


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    blocks: dict[str, TokenBlocks],
    training_args: TrainingArguments,
) -> ToolkitTrainer:
    """The Trainer of a pretraining run over `prepare`'s blocks; random training blocks learn each epoch from it."""
    train = blocks["train"]
    return ToolkitTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=blocks["validation"],
        data_collator=default_data_collator,
        processing_class=tokenizer,
        callbacks=[DatasetEpochCallback(train)] if isinstance(train, RandomBlocks) else None,
    )


def run(
    opened: OpenedRun,
    model_args: PretrainModelArguments,
    data_args: PretrainDataArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
) -> JobResult:
    """Train a GPT from scratch on packed blocks; saves model, tokenizer and curves in output_dir."""
    tokenizer, model, blocks = prepare(model_args, data_args, training_args)
    if opened.main_process:
        logger.info(
            f"{model.__class__.__name__}: {model.num_parameters():,} parameters, vocabulary {len(tokenizer)}, "
            f"{len(blocks['train']):,} training blocks of {data_args.block_size} tokens"
        )
    trainer = build_trainer(model, tokenizer, blocks, training_args)
    opened.start()
    metrics = train_and_save(trainer, training_args, plot=run_args.plot)
    return training_result(
        trainer, metrics, per_step(training_args, data_args.block_size), HEADLINE, opened.resumed_step
    )
