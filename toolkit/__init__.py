"""finetune-toolkit: train and fine-tune GPT-style language models with the Hugging Face stack.

The public API, importable from `toolkit` directly (each name is loaded on first use, so `import toolkit` stays
light; it always registers the GPT with the transformers Auto classes):

- models: `GPTConfig`, `GPTForCausalLM`, `GPTForSequenceClassification`, `GPTModel`, `PRESETS`, `gpt2_to_gpt`,
  `gpt_to_gpt2`, `load_gpt2_as_gpt`
- tokenizers: `build_char_tokenizer`, `train_bpe_tokenizer`, `load_gpt2_tokenizer`, `check_tokenizer_fits`
- data: `load_raw`, `train_validation_splits`, `pack_for_language_modeling`, `tokenize_for_fine_tuning`
- the arithmetic task: `make_arithmetic_dataset`, `arithmetic_splits`, `format_prompt`, `verify`
- loading and generation: `load_causal_lm`, `load_tokenizer`, `generate`
- PEFT: `apply_lora`, `apply_prompt_tuning`, `attention_target_modules`, `describe_parameters`
- training: `ModelArguments`, `DataArguments`, `AdapterArguments`, `RunArguments`, `ToolkitTrainer`,
  `train_and_save`, `pretrain`, `fine_tune`
- RLHF: `PPOConfig`, `PPOTrainer`, `make_reward_trainer`, `reward_model_from_causal_lm`, `evaluate_reward_model`,
  `sampled_preference_pairs`, `exact_match_reward`
- evaluation: `perplexity_of_texts`, `perplexity_of_file`, `bleu_score`, `bleu_score_files`, `evaluate_gsm8k`,
  `EvalArguments`, `evaluate_models`, `load_metric`
- hub: `push_folder`
"""

import importlib

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

LAZY = {
    "toolkit.tokenization": (
        "build_char_tokenizer",
        "train_bpe_tokenizer",
        "load_gpt2_tokenizer",
        "check_tokenizer_fits",
    ),
    "toolkit.data": (
        "load_raw",
        "train_validation_splits",
        "pack_for_language_modeling",
        "tokenize_for_fine_tuning",
    ),
    "toolkit.tasks.arithmetic": ("make_arithmetic_dataset", "arithmetic_splits", "format_prompt", "verify"),
    "toolkit.loading": ("load_causal_lm", "load_tokenizer"),
    "toolkit.adapters": (
        "generate",
        "apply_lora",
        "apply_prompt_tuning",
        "attention_target_modules",
        "describe_parameters",
    ),
    "toolkit.training": (
        "ModelArguments",
        "DataArguments",
        "AdapterArguments",
        "RunArguments",
        "ToolkitTrainer",
        "train_and_save",
        "pretrain",
        "fine_tune",
    ),
    "toolkit.rlhf": (
        "PPOConfig",
        "PPOTrainer",
        "make_reward_trainer",
        "reward_model_from_causal_lm",
        "evaluate_reward_model",
        "sampled_preference_pairs",
    ),
    "toolkit.rlhf.rewards": ("exact_match_reward",),
    "toolkit.evaluation": (
        "perplexity_of_texts",
        "perplexity_of_file",
        "bleu_score",
        "bleu_score_files",
        "evaluate_gsm8k",
        "EvalArguments",
        "evaluate_models",
        "load_metric",
    ),
    "toolkit.hub": ("push_folder",),
}
HOME = {name: module for module, names in LAZY.items() for name in names}


def __getattr__(name: str):
    if name not in HOME:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(HOME[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "PRESETS",
    "GPTConfig",
    "GPTModel",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
    "gpt2_to_gpt",
    "gpt_to_gpt2",
    "load_gpt2_as_gpt",
    *HOME,
]
