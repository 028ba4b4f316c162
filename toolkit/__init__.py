"""finetune-toolkit: train and fine-tune GPT-style language models with the Hugging Face stack."""

from .models import (
    PRESETS,
    GPTConfig,
    GPTForCausalLM,
    GPTForSequenceClassification,
    GPTModel,
    gpt2_to_gpt,
    gpt_to_gpt2,
    load_gpt2_as_gpt,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "GPTConfig",
    "GPTModel",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
    "gpt2_to_gpt",
    "gpt_to_gpt2",
    "load_gpt2_as_gpt",
]
