"""Dataclass arguments of the reward and PPO recipes (parsed with `trl.TrlParser` next to RewardConfig / PPOConfig)."""

from dataclasses import dataclass, field

import datasets

from ..data import SYNTHETIC_NAME
from ..tasks.arithmetic import arithmetic_preference_pairs, format_prompt, make_arithmetic_dataset
from .preferences import arithmetic_policy_pairs, load_preference_jsonl


@dataclass
class RewardModelArguments:
    model_name_or_path: str = field(
        default="outputs/pretrain-tiny",
        metadata={"help": "The causal LM the reward model starts from (its backbone; the score head is new)."},
    )


@dataclass
class PreferenceDataArguments:
    dataset: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "Preference pairs: a JSONL(.gz) file with chosen/rejected (hh-rlhf style, optional prompt), a Hub "
            "dataset id, or 'arithmetic' (correct vs corrupted solutions of the built-in problems)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    explicit_prompt: bool = field(
        default=False, metadata={"help": "Split hh-rlhf dialogues into the shared prompt and the two replies."}
    )
    num_pairs: int = field(default=2000, metadata={"help": "'arithmetic': number of training pairs."})
    synthetic_difficulty: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "'arithmetic': difficulty levels (1-3) to mix."}
    )
    policy_samples_from: str | None = field(
        default=None,
        metadata={
            "help": "'arithmetic': also pair the answers this policy (a model or adapter folder) samples itself: "
            "each wrong answer is rejected against a right one to the same question (exact match judges), so the "
            "reward model learns the mistakes PPO will make."
        },
    )
    policy_sample_problems: int = field(default=2000, metadata={"help": "Problems the policy answers."})
    policy_samples_per_problem: int = field(default=4, metadata={"help": "Answers sampled per problem."})
    policy_sample_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of those answers."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of pairs held out for evaluation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many training pairs."})


def load_preference_splits(args: PreferenceDataArguments, seed: int) -> datasets.DatasetDict:
    """Training and held-out preference pairs. The pairs and the held-out share are fixed (the arithmetic task's
    fixed draw, a seed-0 split), so a run's training `seed` changes only how the policy's answers are sampled."""
    if args.policy_samples_from is not None and args.dataset != SYNTHETIC_NAME:
        raise ValueError(
            f"--policy_samples_from needs --dataset {SYNTHETIC_NAME} (its answers are judged by exact match); "
            f"got --dataset {args.dataset}."
        )
    if args.dataset == SYNTHETIC_NAME:
        difficulty = tuple(args.synthetic_difficulty)
        pairs = arithmetic_preference_pairs(args.num_pairs, "train", difficulty)
        if args.policy_samples_from is not None:
            sampled = arithmetic_policy_pairs(
                args.policy_samples_from,
                args.policy_sample_problems,
                difficulty,
                seed=seed,
                num_samples=args.policy_samples_per_problem,
                temperature=args.policy_sample_temperature,
                skip_problems=args.num_pairs,
            )
            print(f"{len(sampled)} pairs from {args.policy_samples_from}'s own answers, {len(pairs)} corrupted ones")
            pairs = datasets.concatenate_datasets([pairs.remove_columns("final_answer"), sampled])
    elif args.dataset.endswith((".jsonl", ".jsonl.gz")):
        pairs = load_preference_jsonl(args.dataset, explicit_prompt=args.explicit_prompt)
    else:
        pairs = datasets.load_dataset(args.dataset, args.dataset_config, split="train")
    held_out = pairs.train_test_split(test_size=args.validation_fraction, seed=0)
    train = held_out["train"]
    # Capped after the split, so the held-out pairs are the same with or without the cap.
    if args.max_train_samples is not None:
        train = train.select(range(min(len(train), args.max_train_samples)))
    return datasets.DatasetDict(train=train, validation=held_out["test"])


@dataclass
class PPOScriptArguments:
    policy_name_or_path: str = field(
        default="outputs/sft-tiny",
        metadata={
            "help": "The SFT model to improve: a full model folder, a LoRA adapter folder (merged first), or a Hub id."
        },
    )
    reward: str = field(
        default="exact_match",
        metadata={"help": "'model' (a trained reward model) or 'exact_match' (verifiable: the answer is correct)."},
    )
    reward_model_name_or_path: str | None = field(
        default=None, metadata={"help": "With reward='model': the reward model folder (also initialises the values)."}
    )
    dataset: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "Prompts: 'arithmetic' (built-in problems) or a preference JSONL(.gz) whose prompts are used."
        },
    )
    num_prompts: int = field(default=1000, metadata={"help": "How many prompts to draw rollouts from."})
    synthetic_difficulty: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "'arithmetic': difficulty levels (1-3) to mix."}
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A checkpoint-N folder, or 'latest' for the newest one in output_dir."}
    )


def load_prompts(args: PPOScriptArguments) -> datasets.Dataset:
    """A `prompt` column (plus `final_answer` for arithmetic, which the exact-match reward reads)."""
    if args.dataset == SYNTHETIC_NAME:
        problems = make_arithmetic_dataset("train", args.num_prompts, tuple(args.synthetic_difficulty))
        return datasets.Dataset.from_dict(
            {
                "prompt": [format_prompt(question) for question in problems["question"]],
                "final_answer": problems["final_answer"],
            }
        )
    pairs = load_preference_jsonl(args.dataset, explicit_prompt=True)
    prompts = pairs.filter(lambda row: bool(row["prompt"])).select_columns(["prompt"])
    return prompts.select(range(min(len(prompts), args.num_prompts)))
