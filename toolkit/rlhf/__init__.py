"""RLHF: PPO against a reward model or a verifiable reward function (`ppo/`), reward models (`reward_model`),
reward functions for online RL (`reward_functions`), preference pairs (`preferences`), the prompts online RL samples
answers to (`prompts`), the configs of TRL's GRPO and RLOO trainers (`group_rl`), and the passes over query +
response those share (`scoring`). How far a model moved, and what its run cost, is measured in
`toolkit.evaluation` (`preference_accuracy`, `comparison`)."""

from .ppo.ppo_config import PPOConfig
from .ppo.ppo_core import AdaptiveKLController, FixedKLController
from .ppo.ppo_trainer import PPOTrainer
from .ppo.rollout import Rollout, left_pad, response_logprobs, truncate_after_eos
from .preferences import (
    load_preference_jsonl,
    load_preference_pairs,
    pairs_from_samples,
    policy_answer_pairs,
    preference_dataset,
    sampled_preference_pairs,
)
from .reward_model import (
    evaluate_reward_model,
    load_reward_model,
    make_reward_trainer,
    reward_model_from_causal_lm,
    reward_scores,
)
from .scoring import (
    PolicyAndValueModel,
    TokenValueModel,
    check_tokenizers_match,
    disable_dropout,
    position_ids_from_mask,
    sequence_scores,
)

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
    "evaluate_reward_model",
    "load_preference_jsonl",
    "load_preference_pairs",
    "load_reward_model",
    "make_reward_trainer",
    "pairs_from_samples",
    "policy_answer_pairs",
    "preference_dataset",
    "reward_model_from_causal_lm",
    "reward_scores",
    "sampled_preference_pairs",
]
