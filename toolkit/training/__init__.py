"""Training building blocks the recipes are made of: arguments, tokenizer/model setup, Trainer extras."""

from .arguments import AdapterArguments, DataArguments, ModelArguments, RunArguments
from .pipelines import adapt, fine_tune, pretrain
from .setup import build_model, build_tokenizer, check_block_size, load_training_splits
from .trainer import (
    GracefulStopCallback,
    PerplexityLoggingMixin,
    ToolkitTrainer,
    TrainingCurvesCallback,
    check_output_dir,
    resolve_checkpoint,
    train_and_save,
)

__all__ = [
    "adapt",
    "fine_tune",
    "pretrain",
    "AdapterArguments",
    "DataArguments",
    "ModelArguments",
    "RunArguments",
    "build_model",
    "build_tokenizer",
    "check_block_size",
    "load_training_splits",
    "GracefulStopCallback",
    "PerplexityLoggingMixin",
    "ToolkitTrainer",
    "TrainingCurvesCallback",
    "check_output_dir",
    "resolve_checkpoint",
    "train_and_save",
]
