"""finetune-toolkit: train and fine-tune GPT-style language models with the Hugging Face stack.

The map: building blocks `models/` (our GPT), `tokenization`, `data/` (sources, packing), `tasks/` (the arithmetic
task: problems, prompt, splits, `verify`), `adapters` (PEFT), `generation`, `training/` (Trainer extras), `rlhf/`
(PPO, reward models, reward functions, preference data), `evaluation/` (perplexity, GSM8K, BLEU tasks, preference
accuracy, the alignment methods' comparison), `hub/` (upload and card),
`runs` (the run folder layout and metrics.json's summary), `jobs` (the registry of jobs every front door reads);
`pipelines/` holds one module per job, run by `recipes/<job>.py` and `toolkit <job>` through the same `run_job`;
`_compat` holds the version-sensitive code.

The public API, importable from `toolkit` directly (each name is loaded on first use, so `import toolkit` stays
light; it always registers the GPT with the transformers Auto classes):

- models: `GPTConfig`, `GPTForCausalLM`, `GPTForSequenceClassification`, `GPTModel`, `PRESETS`, `gpt2_to_gpt`,
  `gpt_to_gpt2`, `load_gpt2_as_gpt`
- tokenizers: `build_char_tokenizer`, `train_bpe_tokenizer`, `check_tokenizer_fits`
- data: `load_raw`, `train_validation_splits`, `pack_for_language_modeling`
- the arithmetic task: `make_arithmetic_dataset`, `arithmetic_splits`, `format_prompt`, `verify`
- loading and generation: `load_causal_lm`, `load_tokenizer`, `load_gpt2_tokenizer`, `generate`, `generate_completions`
- PEFT: `apply_lora`, `apply_prompt_tuning`, `attention_target_modules`, `describe_parameters`
- training: `ModelArguments`, `DataArguments`, `AdapterArguments`, `RunArguments`, `ToolkitTrainer`,
  `ToolkitSFTTrainer`, `train_and_save`
- RLHF: `PPOConfig`, `PPOTrainer`, `make_reward_trainer`, `reward_model_from_causal_lm`, `evaluate_reward_model`,
  `sampled_preference_pairs`, `exact_match_reward`
- evaluation: `perplexity_of_texts`, `perplexity_of_file`, `bleu_score`, `bleu_score_files`, `evaluate_gsm8k`,
  `load_metric`
- the jobs, as functions of their parsed arguments (each job's `api_name` in `toolkit.jobs.JOBS`): `pretrain`,
  `fine_tune`, `train_reward_model`, `run_ppo`, `run_dpo`, `run_grpo`, `run_rloo`, `evaluate_models`
  (`EvalArguments`); each returns the run's summary. `run_demo` runs the demo.
- hub: `push_folder`
"""

import importlib

from .jobs import JOBS
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

# module -> its public names; a (name, attribute) pair exports an attribute under another name.
LAZY = {
    "toolkit.tokenization": (
        "build_char_tokenizer",
        "train_bpe_tokenizer",
        "check_tokenizer_fits",
    ),
    "toolkit.data": (
        "load_raw",
        "train_validation_splits",
        "pack_for_language_modeling",
    ),
    "toolkit.tasks.arithmetic": ("make_arithmetic_dataset", "arithmetic_splits", "format_prompt", "verify"),
    "toolkit.loading": ("load_causal_lm", "load_tokenizer", "load_gpt2_tokenizer"),
    "toolkit.generation": ("generate", "generate_completions"),
    "toolkit.adapters": (
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
        "ToolkitSFTTrainer",
        "train_and_save",
    ),
    "toolkit.rlhf": (
        "PPOConfig",
        "PPOTrainer",
        "make_reward_trainer",
        "reward_model_from_causal_lm",
        "evaluate_reward_model",
        "sampled_preference_pairs",
    ),
    "toolkit.rlhf.reward_functions": ("exact_match_reward",),
    "toolkit.evaluation": (
        "perplexity_of_texts",
        "perplexity_of_file",
        "bleu_score",
        "bleu_score_files",
        "evaluate_gsm8k",
        "load_metric",
    ),
    "toolkit.pipelines.eval": ("EvalArguments",),
    "toolkit.pipelines.demo": (("run_demo", "run"),),
    "toolkit.hub": ("push_folder",),
}
HOME = {
    (entry[0] if isinstance(entry, tuple) else entry): (module, entry[1] if isinstance(entry, tuple) else entry)
    for module, names in LAZY.items()
    for entry in names
}


JOB_FUNCTIONS = {job.api_name: job.name for job in JOBS.values() if job.api_name}


def job_function(name: str):
    """The function `toolkit.<api_name>` that runs the job `name` from Python."""
    from .pipelines.common import execute

    def run(*arguments) -> dict:
        return execute(name, *arguments)

    run.__name__ = run.__qualname__ = JOBS[name].api_name
    run.__doc__ = (
        f"The {name} job on its parsed arguments ({JOBS[name].pipeline}.ARGUMENTS, in order), as `toolkit {name}` "
        "runs it; returns the run's summary (metrics.json)."
    )
    return run


def __getattr__(name: str):
    if name in JOB_FUNCTIONS:
        value = job_function(JOB_FUNCTIONS[name])
    elif name in HOME:
        module, attribute = HOME[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
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
    *JOB_FUNCTIONS,
]
