"""Reward models: a scalar reward model from a causal LM, training with TRL's RewardTrainer, and pairwise evaluation.

A reward model is an `AutoModelForSequenceClassification` with num_labels=1 whose score is read at the last real token.
TRL's RewardTrainer appends EOS to every chosen/rejected text, so the score is learned at the EOS token; PPO reads it
at the EOS that ends a response, the same place.
"""

import math
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

import datasets
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase
from trl import RewardConfig, RewardTrainer

from ..adapters import merge_adapter
from ..loading import model_context_length
from .preferences import validate_preference_row
from .scoring import disable_dropout, sequence_scores, unwrap_peft


def init_reward_head(model: nn.Module) -> None:
    """Reward head init from the RLHF literature: weight ~ N(0, 1 / sqrt(d + 1)), bias 0."""
    head = unwrap_peft(model).score
    with torch.no_grad():
        head.weight.normal_(mean=0.0, std=1.0 / math.sqrt(head.in_features + 1))
        if head.bias is not None:
            head.bias.zero_()


def reward_model_from_causal_lm(
    causal_lm: str | Path | PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **from_pretrained_kwargs
) -> PreTrainedModel:
    """A scalar reward model (sequence classification, num_labels=1) on a pretrained causal LM's backbone.

    `causal_lm` is a folder or Hub id (GPT-2, our GPT, any model with an AutoModelForSequenceClassification class),
    or a loaded causal LM whose backbone weights are copied. The new head is initialised with `init_reward_head`,
    dropout is off, and `pad_token_id` comes from the tokenizer (which must have a pad token).
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set one (GPT-2: tokenizer.pad_token = tokenizer.eos_token).")
    if isinstance(causal_lm, PreTrainedModel):
        config = deepcopy(causal_lm.config)
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
        model.base_model.load_state_dict(causal_lm.base_model.state_dict())
    else:
        from_pretrained_kwargs.setdefault("trust_remote_code", False)
        model = AutoModelForSequenceClassification.from_pretrained(causal_lm, num_labels=1, **from_pretrained_kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    init_reward_head(model)
    disable_dropout(model)
    return model


def load_reward_model(path: str | Path, **from_pretrained_kwargs) -> PreTrainedModel:
    """A trained reward model in eval mode with dropout off: a full model folder, or a PEFT adapter folder (merged
    into its base, so PPO can copy it as the value model)."""
    from_pretrained_kwargs.setdefault("trust_remote_code", False)
    if (Path(path) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification

        # The base folder may be the causal LM the reward model started from: ask for the one-label head.
        model = AutoPeftModelForSequenceClassification.from_pretrained(path, num_labels=1, **from_pretrained_kwargs)
        model = merge_adapter(model)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, **from_pretrained_kwargs)
    disable_dropout(model)
    return model.eval()


def make_reward_trainer(
    model: str | Path | PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None = None,
    args: RewardConfig | None = None,
    peft_config=None,
) -> RewardTrainer:
    """TRL's `RewardTrainer` for a preference dataset (`chosen`/`rejected`, optional `prompt`).

    `model` is a reward model (see `reward_model_from_causal_lm`) or a causal LM folder, which is turned into one.
    With a LoRA `peft_config` the score head is trained in full (`modules_to_save=["score"]`) unless the config
    says otherwise. Note RewardConfig's defaults: bf16=True and activation checkpointing on (on CPU pass bf16=False
    and activation_checkpointing=False), and pairs longer than `max_length` (1024) tokens are silently dropped.
    """
    if isinstance(model, (str, Path)):  # a folder or Hub id; a PEFT-wrapped reward model is not a PreTrainedModel
        model = reward_model_from_causal_lm(model, tokenizer)
    for name, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
        if dataset is not None:
            for index, row in enumerate(dataset):
                validate_preference_row(row, f"{name} row {index}")
    if peft_config is not None and getattr(peft_config, "modules_to_save", None) is None:
        peft_config.modules_to_save = ["score"]
    return RewardTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


# --------------------------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def reward_scores(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int = 16
) -> torch.Tensor:
    """The reward model's score of each text (N,), read at its last token; texts are scored as given."""
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, return_tensors="pt").to(device)
        scores.append(sequence_scores(model, batch["input_ids"], batch["attention_mask"]).float().cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% for z=1.96); unlike p ± z·se it stays inside [0, 1]
    and keeps its coverage for small samples and proportions near 0 or 1."""
    if trials <= 0:
        raise ValueError(f"A proportion needs at least one trial, got {trials}.")
    share = successes / trials
    denominator = 1 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def evaluate_reward_model(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    dataset: datasets.Dataset,
    batch_size: int = 16,
    max_length: int | None = None,
) -> dict[str, float]:
    """Pairwise accuracy and reward margin on held-out preference pairs.

    Texts are built as the RewardTrainer trains on them: prompt + answer + EOS. Pairs with a side longer than
    `max_length` tokens (default: the model's context) are skipped and counted in `num_skipped`.
    Returns accuracy (share of pairs with score(chosen) > score(rejected)) with its 95% Wilson interval
    (accuracy_ci_low, accuracy_ci_high), margin (mean score difference), chosen_score / rejected_score (means),
    num_pairs, num_skipped, and the accuracy of two length-only rules on the same pairs, shorter_wins_accuracy and
    longer_wins_accuracy (the side with fewer / more tokens is chosen; ties are misses): a reward model that does not
    beat them may have learned length alone.
    """
    eos = tokenizer.eos_token or ""
    max_length = max_length or model_context_length(unwrap_peft(model))
    prompts = dataset["prompt"] if "prompt" in dataset.column_names else [""] * len(dataset)

    def with_eos(text: str) -> str:
        return text if text.endswith(eos) else text + eos

    chosen = [with_eos(prompt + answer) for prompt, answer in zip(prompts, dataset["chosen"])]
    rejected = [with_eos(prompt + answer) for prompt, answer in zip(prompts, dataset["rejected"])]
    lengths = [
        (len(a), len(b)) for a, b in zip(tokenizer(chosen)["input_ids"], tokenizer(rejected)["input_ids"], strict=True)
    ]
    keep = [index for index, pair in enumerate(lengths) if max_length is None or max(pair) <= max_length]
    chosen, rejected = [chosen[index] for index in keep], [rejected[index] for index in keep]
    lengths = torch.tensor([lengths[index] for index in keep]).reshape(-1, 2)
    num_skipped = len(dataset) - len(chosen)
    if not chosen:
        raise ValueError(f"All {len(dataset)} pairs are longer than max_length={max_length} tokens.")

    was_training = model.training
    model.eval()
    chosen_scores = reward_scores(model, tokenizer, chosen, batch_size)
    rejected_scores = reward_scores(model, tokenizer, rejected, batch_size)
    model.train(was_training)
    correct = int((chosen_scores > rejected_scores).sum())
    low, high = wilson_interval(correct, len(chosen))
    return {
        "accuracy": correct / len(chosen),
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "margin": (chosen_scores - rejected_scores).mean().item(),
        "chosen_score": chosen_scores.mean().item(),
        "rejected_score": rejected_scores.mean().item(),
        "num_pairs": len(chosen),
        "num_skipped": num_skipped,
        "shorter_wins_accuracy": (lengths[:, 0] < lengths[:, 1]).float().mean().item(),
        "longer_wins_accuracy": (lengths[:, 0] > lengths[:, 1]).float().mean().item(),
    }


__all__ = [
    "init_reward_head",
    "reward_model_from_causal_lm",
    "load_reward_model",
    "make_reward_trainer",
    "reward_scores",
    "wilson_interval",
    "evaluate_reward_model",
]
