"""PEFT helpers: LoRA on the attention projections of each architecture, soft prompt tuning, parameter reports,
target checks that catch typos (PEFT only fails when nothing at all matches), and merging.
"""

import re
import warnings

import torch
from peft import LoraConfig, PeftModel, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import PreTrainedModel

from ._compat import PEFT_DEFAULT_LORA_TARGETS

# "Attention projections" per architecture. GPT-2 fuses q, k, v into one Conv1D `c_attn`; its output projection
# must be named `attn.c_proj`, since a bare `c_proj` also matches the MLP's.
ATTENTION_PROJECTIONS = {
    "gpt2": (["c_attn"], ["attn.c_proj"]),
    "toolkit_gpt": (["q_proj", "v_proj"], ["o_proj"]),
}
ATTENTION_WORDS = re.compile(r"attn|attention", re.IGNORECASE)
ALL_LINEAR = "all-linear"


def attention_target_modules(model: PreTrainedModel, include_output: bool = False) -> list[str]:
    """LoRA target names for the attention projections of `model`'s architecture."""
    model_type = model.config.model_type
    if model_type in ATTENTION_PROJECTIONS:
        inputs, outputs = ATTENTION_PROJECTIONS[model_type]
        return inputs + (outputs if include_output else [])
    if model_type in PEFT_DEFAULT_LORA_TARGETS:
        return list(PEFT_DEFAULT_LORA_TARGETS[model_type])
    raise ValueError(
        f"No default LoRA targets are known for model type {model_type!r}: pass --lora_target_modules "
        "with the names of its attention projection layers."
    )


def matching_modules(model: torch.nn.Module, target: str) -> list[str]:
    """Module names PEFT would adapt for one target name (exact name or a `.`-separated suffix)."""
    return [name for name, _ in model.named_modules() if name == target or name.endswith("." + target)]


def check_lora_targets(model: torch.nn.Module, targets: list[str]) -> dict[str, list[str]]:
    """Every target must match a module; warn when a match lies outside attention. Returns the matches."""
    matches = {target: matching_modules(model, target) for target in targets}
    missing = [target for target, found in matches.items() if not found]
    if missing:
        weighted = sorted(
            {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if getattr(m, "weight", None) is not None}
        )
        raise ValueError(
            f"LoRA target(s) {missing} match no module of this {model.config.model_type} model. "
            f"Its layers with weights are named: {', '.join(weighted)}."
        )
    outside = sorted({name for found in matches.values() for name in found if not ATTENTION_WORDS.search(name)})
    if outside:
        warnings.warn(
            f"LoRA targets also match layers outside attention ({len(outside)}, e.g. {outside[0]}). "
            "Name them more precisely (e.g. 'attn.c_proj' instead of 'c_proj') if that is not intended.",
            stacklevel=2,
        )
    return matches


def lora_config(
    model: PreTrainedModel,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: list[str] | None = None,
    include_attention_output: bool = False,
    task_type: str = TaskType.CAUSAL_LM,
    modules_to_save: list[str] | None = None,
) -> LoraConfig:
    """LoRA on `model`'s attention projections (or the named modules, checked to exist; or PEFT's `all-linear`: every
    linear layer but the output one); `modules_to_save` train in full next to them (a reward model's new score
    head). TRL's trainers take it as `peft_config`."""
    targets = target_modules or attention_target_modules(model, include_attention_output)
    if targets == [ALL_LINEAR]:
        targets = ALL_LINEAR  # PEFT's own keyword, a string
    else:
        check_lora_targets(model, targets)
    return LoraConfig(
        task_type=task_type,
        modules_to_save=modules_to_save,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores weights as (in, out)
    )


def apply_lora(model: PreTrainedModel, **options) -> PeftModel:
    """Wrap `model` with LoRA adapters; `options` are `lora_config`'s."""
    return get_peft_model(model, lora_config(model, **options))


def apply_prompt_tuning(
    model: PreTrainedModel,
    *,
    num_virtual_tokens: int = 20,
    init_text: str | None = None,
    tokenizer_name_or_path: str | None = None,
) -> PeftModel:
    """Wrap `model` with a trainable soft prompt, random or initialised from the embeddings of `init_text`."""
    if init_text is not None and tokenizer_name_or_path is None:
        raise ValueError("Prompt tuning from a text needs the tokenizer's folder or Hub id (tokenizer_name_or_path).")
    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if init_text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=init_text,
        tokenizer_name_or_path=tokenizer_name_or_path,
    )
    return get_peft_model(model, config)


def merge_adapter(model: PeftModel) -> PreTrainedModel:
    """The adapter merged into its base: a plain model that trains like one loaded from a full folder.

    PEFT loads a saved adapter for inference, with every parameter frozen, and `merge_and_unload` keeps them frozen;
    a model that is then trained in full (a PPO policy or value model) would silently not learn.
    """
    return model.merge_and_unload().requires_grad_(True)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; for a PEFT model the total includes the adapter."""
    if isinstance(model, PeftModel):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def describe_parameters(model: torch.nn.Module) -> str:
    trainable, total = parameter_counts(model)
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"


def is_prompt_learning(model: torch.nn.Module) -> bool:
    return isinstance(model, PeftModel) and model.active_peft_config.is_prompt_learning
