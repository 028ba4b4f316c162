"""Training building blocks the pipelines are made of: shared arguments, tokenizer/model setup, Trainer extras."""

from .arguments import (
    AdapterArguments,
    DataArguments,
    ModelArguments,
    PretrainDataArguments,
    PretrainModelArguments,
    RunArguments,
)
from .setup import build_model, build_tokenizer, check_block_size, load_training_splits
from .trainer import (
    GracefulStopCallback,
    PerplexityLoggingMixin,
    ToolkitSFTTrainer,
    ToolkitTrainer,
    TrainingCurvesCallback,
    per_step,
    train_and_save,
    training_result,
)

__all__ = [
    "AdapterArguments",
    "DataArguments",
    "ModelArguments",
    "PretrainDataArguments",
    "PretrainModelArguments",
    "RunArguments",
    "build_model",
    "build_tokenizer",
    "check_block_size",
    "load_training_splits",
    "GracefulStopCallback",
    "PerplexityLoggingMixin",
    "ToolkitSFTTrainer",
    "ToolkitTrainer",
    "TrainingCurvesCallback",
    "per_step",
    "train_and_save",
    "training_result",
]
