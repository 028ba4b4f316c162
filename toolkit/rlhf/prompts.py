"""The prompts an online RL job (PPO, GRPO, RLOO) samples answers to: the arithmetic task's training problems, or the
shared prompts of preference pairs."""

from dataclasses import dataclass, field

import datasets

from ..data import SYNTHETIC_NAME
from ..tasks.arithmetic import ArithmeticDifficultyArguments, format_prompt, make_arithmetic_dataset
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


def load_prompts(args: PromptDataArguments) -> datasets.Dataset:
    """A `prompt` column (plus `final_answer` for arithmetic, which the exact-match reward reads)."""
    if args.dataset == SYNTHETIC_NAME:
        problems = make_arithmetic_dataset("train", args.num_prompts, tuple(args.synthetic_difficulty))
        return datasets.Dataset.from_dict(
            {
                "prompt": [format_prompt(question) for question in problems["question"]],
                "final_answer": problems["final_answer"],
            }
        )
    pairs = load_preference_pairs(args.dataset, args.dataset_config, explicit_prompt=True)
    prompts = pairs.filter(lambda row: bool(row["prompt"])).select_columns(["prompt"])
    return prompts.select(range(min(len(prompts), args.num_prompts)))


__all__ = ["PromptDataArguments", "load_prompts"]
