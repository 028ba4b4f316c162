"""Settings of a PPO run: `transformers.TrainingArguments` plus PPO's own, in the same vocabulary as every recipe.

What PPO shares with the Trainer recipes has the TrainingArguments name and meaning: `output_dir`, `seed`,
`learning_rate`, `lr_scheduler_type` (+ `lr_scheduler_kwargs`, `warmup_steps`), `optim`, `weight_decay`,
`adam_beta1`/`adam_beta2`/`adam_epsilon`, `max_grad_norm`, `max_steps`, `per_device_train_batch_size`,
`gradient_accumulation_steps`, `logging_steps`, `save_strategy`/`save_steps`/`save_total_limit`, `report_to`
(TensorBoard, W&B, trackio, ... through transformers' own integrations), `run_name`, `bf16`/`fp16`,
`activation_checkpointing`, `use_cpu`, `resume_from_checkpoint`, `disable_tqdm`. The evaluation settings are not used:
PPO does not evaluate while it trains (run `toolkit eval` on the saved policy).

Batches, per process (as TRL's on-policy trainers count them): a rollout batch of
`per_device_train_batch_size * gradient_accumulation_steps * num_mini_batches` prompts per step; each PPO epoch
splits it into `num_mini_batches` mini-batches (one optimizer step each) of `gradient_accumulation_steps` micro-batches
of `per_device_train_batch_size` rows (one forward/backward pass each). Defaults for the objective and optimiser are
TRL's last PPO defaults.
"""

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .ppo_core import KL_ESTIMATORS


def steps_from(value: float, total: int) -> int:
    """A TrainingArguments step count: an integer, or below 1 a fraction of the run's steps (rounded up)."""
    return math.ceil(total * value) if 0 < value < 1 else int(value)


@dataclass
class PPOConfig(TrainingArguments):
    """`TrainingArguments` with PPO's defaults and fields (see the module docstring for what PPO reads)."""

    output_dir: str = field(default="ppo-output", metadata={"help": "Checkpoints, final models, metrics and plots."})
    seed: int = field(default=0, metadata={"help": "Random seed; process i samples with seed + i."})
    learning_rate: float = field(default=3e-6, metadata={"help": "Peak learning rate of the optimizer."})
    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Rollouts per forward/backward pass of the update (the micro-batch), per process."},
    )
    logging_steps: float = field(
        default=1, metadata={"help": "Log metrics (metrics.jsonl, report_to) every N steps; below 1, a fraction."}
    )
    num_mini_batches: int = field(
        default=4, metadata={"help": "Optimizer steps per PPO epoch: the rollout batch is split into this many."}
    )
    total_episodes: int | None = field(
        default=None,
        metadata={
            "help": "Responses to generate in total, over all processes, when max_steps is not set. Default: one pass "
            "over the prompts."
        },
    )
    rollout_forward_batch_size: int | None = field(
        default=None, metadata={"help": "Rows per forward pass when scoring rollouts. Default: the whole batch."}
    )
    num_ppo_epochs: int = field(default=4, metadata={"help": "Passes over each rollout batch, reshuffled each time."})
    max_new_tokens: int = field(default=53, metadata={"help": "Longest response, in tokens."})
    temperature: float = field(
        default=0.7, metadata={"help": "Sampling temperature; log-probs use logits divided by it too."}
    )
    top_k: int = field(
        default=0, metadata={"help": "Sample from the k most likely tokens; 0 = all (on-policy, recommended)."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass; 1.0 = off (on-policy, recommended)."})
    missing_eos_penalty: float | None = field(
        default=None, metadata={"help": "Subtracted from the score of responses that never emit EOS (None: off)."}
    )
    kl_coef: float = field(default=0.05, metadata={"help": "Initial KL penalty coefficient beta."})
    kl_estimator: str = field(
        default="k1", metadata={"help": "'k1' (logp - logp_ref) or 'k3' ((r - 1) - log r, r = p_ref / p)."}
    )
    adaptive_kl: bool = field(default=False, metadata={"help": "Adapt beta so the KL tracks kl_target."})
    kl_target: float = field(default=6.0, metadata={"help": "Target KL per response (nats), with adaptive_kl."})
    kl_horizon: int = field(default=10000, metadata={"help": "Episodes over which beta adapts, with adaptive_kl."})
    whiten_rewards: bool = field(default=False, metadata={"help": "Scale per-token rewards to unit variance."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda."})
    cliprange: float = field(default=0.2, metadata={"help": "Policy ratio clip range."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Value prediction clip range."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    sample_steps: int = field(default=10, metadata={"help": "Print a table of sample generations every N steps."})
    num_samples_to_print: int = field(default=4, metadata={"help": "Rows in the sample table."})
    reuse_freed_memory: bool = field(
        default=True,
        metadata={
            "help": "On CPU (Linux, glibc): keep the memory a step frees for the next step instead of returning it to "
            "the OS, which otherwise faults it in again page by page (toolkit.allocator.reuse_freed_memory; "
            "process-wide)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "num_mini_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_ppo_epochs < 1:
            raise ValueError(
                f"--num_ppo_epochs must be at least 1 (each rollout is trained on), got {self.num_ppo_epochs}."
            )
        if self.max_steps == 0:
            raise ValueError(
                "--max_steps 0 trains nothing: pass a positive number of PPO steps (or -1: from the data)."
            )
        if self.total_episodes is not None and self.total_episodes < 1:
            raise ValueError(f"--total_episodes must be positive, got {self.total_episodes}.")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}.")
        if self.temperature <= 0:
            raise ValueError(f"PPO samples its responses, so temperature must be > 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p is the probability mass sampled from, in (0, 1] (1: all), got {self.top_p}.")
        if self.top_k < 0:
            raise ValueError(f"--top_k must be 0 (all tokens) or more, got {self.top_k}.")
        if self.save_strategy == "steps" and self.save_steps <= 0:
            raise ValueError(f"--save_steps must be positive with --save_strategy steps, got {self.save_steps}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")

    @property
    def micro_batch_size(self) -> int:
        """Rows per forward/backward pass of the update."""
        return self.per_device_train_batch_size

    @property
    def mini_batch_size(self) -> int:
        """Rollouts per optimizer step, per process."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def batch_size(self) -> int:
        """Prompts rolled out per PPO step, per process."""
        return self.mini_batch_size * self.num_mini_batches


__all__ = ["PPOConfig", "steps_from"]
