"""The prompts an online RL job (PPO, GRPO, RLOO) samples answers to: the arithmetic task's training problems, or the
shared prompts of preference pairs."""

from dataclasses import dataclass, field

import datasets

from ..data import SYNTHETIC_NAME
from ..tasks.arithmetic import ArithmeticDifficultyArguments
from .preferences import load_preference_pairs


@dataclass
class PromptDataArguments(ArithmeticDifficultyArguments):
    dataset: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "Prompts: 'arithmetic' (built-in problems), or preference pairs whose shared prompts are used: a "
            "JSONL(.gz)/JSON/CSV/Parquet file or a Hub dataset such as Anthropic/hh-rlhf."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    num_prompts: int = field(default=1000, metadata={"help": "How many prompts to draw rollouts from."})

    def __post_init__(self):
        super().__post_init__()
        if self.num_prompts < 1:
            raise ValueError(
                f"--num_prompts must be at least 1 (rollouts are drawn from them), got {self.num_prompts}."
            )


def load_prompts(args: PromptDataArguments) -> datasets.Dataset:
    """The first `num_prompts` non-empty prompts of the source's pairs (hh-rlhf dialogues split at their last
    assistant turn), with `final_answer` when the source has one (the built-in task: the exact-match reward's gold)."""
    pairs = load_preference_pairs(
        args.dataset,
        args.dataset_config,
        explicit_prompt=True,
        synthetic_sizes={"train": args.num_prompts},
        synthetic_difficulty=args.synthetic_difficulty,
    )
    prompts = pairs.filter(lambda row: bool(row["prompt"])).select_columns(
        [column for column in ("prompt", "final_answer") if column in pairs.column_names]
    )
    return prompts.select(range(min(len(prompts), args.num_prompts)))


__all__ = ["PromptDataArguments", "load_prompts"]
