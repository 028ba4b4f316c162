"""RLHF: PPO against a reward model or a verifiable reward function, reward-model training, preference pairs, and
the prompts, rewards and configs of TRL's GRPO and RLOO trainers (`prompts`, `rewards`, `group_rl`)."""

from .modeling import (
    PolicyAndValueModel,
    TokenValueModel,
    check_tokenizers_match,
    disable_dropout,
    position_ids_from_mask,
    sequence_scores,
)
from .ppo_config import PPOConfig
from .ppo_core import AdaptiveKLController, FixedKLController
from .ppo_trainer import PPOTrainer
from .preferences import (
    arithmetic_policy_pairs,
    load_preference_jsonl,
    load_preference_pairs,
    pairs_from_samples,
    preference_dataset,
    sampled_preference_pairs,
)
from .reward import (
    evaluate_reward_model,
    load_reward_model,
    make_reward_trainer,
    reward_model_from_causal_lm,
    reward_scores,
)
from .rollout import Rollout, left_pad, response_logprobs, truncate_after_eos

__all__ = [
    "PPOConfig",
    "PPOTrainer",
    "Rollout",
    "left_pad",
    "truncate_after_eos",
    "response_logprobs",
    "PolicyAndValueModel",
    "TokenValueModel",
    "check_tokenizers_match",
    "disable_dropout",
    "position_ids_from_mask",
    "sequence_scores",
    "AdaptiveKLController",
    "FixedKLController",
    "arithmetic_policy_pairs",
    "evaluate_reward_model",
    "load_preference_jsonl",
    "load_preference_pairs",
    "load_reward_model",
    "make_reward_trainer",
    "pairs_from_samples",
    "preference_dataset",
    "reward_model_from_causal_lm",
    "reward_scores",
    "sampled_preference_pairs",
]
