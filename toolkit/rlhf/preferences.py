"""Preference pairs for reward models: hh-rlhf style files and rows, validated with the row at fault named, and
pairs from a policy's own samples judged by a verifier."""

import gzip
import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch

from ..data import SYNTHETIC_NAME, load_raw
from ..generation import ModelOrPath, TokenizerOrPath, generate_completions
from ..parsing import check_fraction
from ..tasks.arithmetic import ArithmeticDifficultyArguments, verify

logger = logging.getLogger(__name__)

HH_ASSISTANT_MARKER = "\n\nAssistant:"


def validate_preference_row(row: dict, where: str) -> None:
    """Raise a ValueError naming `where` (e.g. "data.jsonl line 7") for a row that cannot train a reward model."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object with 'chosen' and 'rejected', got {type(row).__name__}.")
    for key in ("chosen", "rejected"):
        if key not in row:
            raise ValueError(f"{where}: missing {key!r} (keys: {sorted(row)}).")
        if not isinstance(row[key], str):
            raise ValueError(f"{where}: {key!r} must be a string, got {type(row[key]).__name__}.")
        if not row[key].strip():
            raise ValueError(f"{where}: {key!r} is empty.")
    if "prompt" in row and not isinstance(row["prompt"], str):
        raise ValueError(f"{where}: 'prompt' must be a string, got {type(row['prompt']).__name__}.")
    if row["chosen"] == row["rejected"]:
        raise ValueError(f"{where}: 'chosen' and 'rejected' are identical, so the pair teaches no preference.")


def split_prompt(chosen: str, rejected: str, marker: str = HH_ASSISTANT_MARKER) -> tuple[str, str, str]:
    """Turn an implicit-prompt pair (two whole dialogues) into (prompt, chosen, rejected).

    The prompt is the dialogue up to and including the last `marker` of `chosen`, when `rejected` starts with the same
    text and both answers after it are non-empty; otherwise the prompt is "" and the texts are returned unchanged.
    """
    cut = chosen.rfind(marker)
    if cut < 0:
        return "", chosen, rejected
    prompt = chosen[: cut + len(marker)]
    if not rejected.startswith(prompt) or not chosen[len(prompt) :].strip() or not rejected[len(prompt) :].strip():
        return "", chosen, rejected
    return prompt, chosen[len(prompt) :], rejected[len(prompt) :]


def preference_dataset(rows: Sequence[dict], source: str = "row", explicit_prompt: bool = False) -> datasets.Dataset:
    """A validated `datasets.Dataset` with `chosen`/`rejected` columns, plus `prompt` when the rows have one or when
    `explicit_prompt` splits hh-rlhf-style dialogues (`split_prompt`), and `final_answer` (the gold of an exact-match
    reward) when every row has one. Errors name `source` and the row index."""
    for index, row in enumerate(rows):
        validate_preference_row(row, f"{source} {index}")
    with_prompt = explicit_prompt or any("prompt" in row for row in rows)
    columns = {"prompt": [], "chosen": [], "rejected": []} if with_prompt else {"chosen": [], "rejected": []}
    for row in rows:
        prompt, chosen, rejected = row.get("prompt", ""), row["chosen"], row["rejected"]
        if explicit_prompt and not prompt:
            prompt, chosen, rejected = split_prompt(chosen, rejected)
        if with_prompt:
            columns["prompt"].append(prompt)
        columns["chosen"].append(chosen)
        columns["rejected"].append(rejected)
    if rows and all(row.get("final_answer") is not None for row in rows):
        columns["final_answer"] = [str(row["final_answer"]) for row in rows]
    return datasets.Dataset.from_dict(columns)


def load_preference_jsonl(path: str | Path, explicit_prompt: bool = False) -> datasets.Dataset:
    """Read preference pairs from JSON Lines (`.jsonl` or gzip-compressed `.jsonl.gz`).

    Each line is an object with `chosen` and `rejected` (hh-rlhf: two whole dialogues, an implicit prompt) and
    optionally `prompt`. Bad lines raise a ValueError naming the file and the 1-based line number.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {line_number}: not valid JSON ({error}).") from error
            validate_preference_row(row, f"{path} line {line_number}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no preference pairs.")
    return preference_dataset(rows, source=str(path), explicit_prompt=explicit_prompt)


def load_preference_pairs(
    source: str, config_name: str | None = None, explicit_prompt: bool = False, **synthetic
) -> datasets.Dataset:
    """Preference pairs from a JSONL(.gz) file (line numbers in errors), another local file (.json, .csv,
    .parquet), a Hub dataset such as `Anthropic/hh-rlhf` or the built-in task (`synthetic`: `load_raw`'s
    `synthetic_sizes` and `synthetic_difficulty`), its train split; every row is checked as a pair."""
    if source.endswith((".jsonl", ".jsonl.gz")):
        return load_preference_jsonl(source, explicit_prompt=explicit_prompt)
    return preference_dataset(
        training_rows(source, config_name, **synthetic).to_list(), source=source, explicit_prompt=explicit_prompt
    )


def training_rows(source: str, config_name: str | None = None, **synthetic) -> datasets.Dataset:
    raw = load_raw(source, config_name=config_name, **synthetic)
    if "train" not in raw:
        raise ValueError(f"{source} has no 'train' split (it has {list(raw)}).")
    return raw["train"]


def sample_completions(
    policy: ModelOrPath,
    tokenizer: TokenizerOrPath,
    prompts: Sequence[str],
    *,
    num_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    show_progress: bool = True,
) -> list[str]:
    """`num_samples` completions per prompt at `temperature` (pure sampling), grouped by prompt, seeded by `seed`."""
    torch.manual_seed(seed)
    return generate_completions(
        policy,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=max(1, 64 // num_samples),
        temperature=temperature,
        num_samples=num_samples,
        show_progress=show_progress,
    )


def sampled_preference_pairs(
    policy: ModelOrPath,
    tokenizer: TokenizerOrPath,
    prompts: Sequence[str],
    is_correct: Callable[[int, str], bool],
    *,
    num_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    references: Sequence[str] | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> datasets.Dataset:
    """Preference pairs from a policy's own samples, judged by a verifier: the data a reward model needs to rank what
    PPO will actually generate (corrupted references alone teach it other mistakes than the policy's).

    `num_samples` completions are sampled per prompt at `temperature` (`sample_completions`), then paired by
    `pairs_from_samples` with `is_correct(prompt_index, completion)` as the judge. Columns: prompt, chosen, rejected.
    """
    if num_samples < 2 and references is None:
        raise ValueError(f"Pairs from samples need num_samples >= 2 (or references), got {num_samples}.")
    completions = sample_completions(
        policy,
        tokenizer,
        prompts,
        num_samples=num_samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        show_progress=show_progress,
    )
    return pairs_from_samples(prompts, completions, is_correct, references=references, seed=seed)


def pairs_from_samples(
    prompts: Sequence[str],
    completions: Sequence[str],
    is_correct: Callable[[int, str], bool],
    *,
    references: Sequence[str] | None = None,
    seed: int = 0,
) -> datasets.Dataset:
    """Pairs from completions already drawn, grouped by prompt (the same number per prompt).

    Every distinct wrong, non-empty completion becomes a rejected answer, paired with a right completion of the same
    prompt drawn at random, or with `references[prompt_index]` when no sample is right (without references such
    prompts give no pair). Prompts whose samples are all right give no pair."""
    if not prompts or len(completions) % len(prompts) != 0:
        raise ValueError(
            f"{len(completions)} completions for {len(prompts)} prompts: give the same number per prompt."
        )
    num_samples = len(completions) // len(prompts)
    rng = random.Random(seed)
    rows = []
    for index, prompt in enumerate(prompts):
        samples = completions[index * num_samples : (index + 1) * num_samples]
        judged = [(text, is_correct(index, text)) for text in dict.fromkeys(samples)]
        right = [text for text, correct in judged if correct]
        wrong = [text for text, correct in judged if not correct and text.strip()]
        if not right and references is not None:
            right = [references[index]]
        rows += [{"prompt": prompt, "chosen": rng.choice(right), "rejected": text} for text in wrong if right]
    columns = datasets.Features({name: datasets.Value("string") for name in ("prompt", "chosen", "rejected")})
    return datasets.Dataset.from_list(rows, features=columns)


@dataclass
class PreferenceDataArguments(ArithmeticDifficultyArguments):
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
    policy_samples_from: str | None = field(
        default=None,
        metadata={
            "help": "Also pair the answers this policy (a model or adapter folder) samples itself to the source's "
            "problems after its first --num_pairs ('arithmetic' generates them): each wrong answer is rejected "
            "against a right one to the same question (exact match on final_answer judges), so the reward model "
            "learns the mistakes PPO will make."
        },
    )
    policy_sample_problems: int = field(default=2000, metadata={"help": "Problems the policy answers."})
    policy_samples_per_problem: int = field(default=4, metadata={"help": "Answers sampled per problem."})
    policy_sample_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of those answers."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of pairs held out for evaluation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many training pairs."})

    def __post_init__(self):
        super().__post_init__()
        for name in ("policy_sample_problems", "policy_samples_per_problem", "max_train_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_pairs < 0 or (
            self.num_pairs == 0 and self.dataset == SYNTHETIC_NAME and self.policy_samples_from is None
        ):
            raise ValueError(
                f"--num_pairs {self.num_pairs} leaves no pairs: pass at least 1 (or 0 with --policy_samples_from, "
                "to train on the policy's own answers only)."
            )
        check_fraction("validation_fraction", self.validation_fraction)


def load_preference_splits(args: PreferenceDataArguments, seed: int) -> datasets.DatasetDict:
    """Training and held-out preference pairs. The pairs and the held-out share are fixed (the built-in task's
    fixed draw, a seed-0 split), so a run's training `seed` changes only how the policy's answers are sampled."""
    pairs = load_preference_pairs(
        args.dataset,
        args.dataset_config,
        args.explicit_prompt,
        synthetic_sizes={"train": args.num_pairs},
        synthetic_difficulty=args.synthetic_difficulty,
    )
    if args.policy_samples_from is not None:
        sampled = policy_answer_pairs(args, seed)
        logger.info("%d pairs from %s's own answers, %d others", len(sampled), args.policy_samples_from, len(pairs))
        pairs = (
            datasets.concatenate_datasets([pairs.select_columns(sampled.column_names), sampled]) if pairs else sampled
        )
    held_out_count = math.ceil(len(pairs) * args.validation_fraction)  # as datasets' train_test_split counts
    if not 0 < held_out_count < len(pairs):
        raise ValueError(
            f"{len(pairs)} preference pair(s) from {args.dataset} cannot be split into training and held-out pairs "
            f"with --validation_fraction {args.validation_fraction}: give at least 2 pairs."
        )
    held_out = pairs.train_test_split(test_size=args.validation_fraction, seed=0)
    train = held_out["train"]
    # Capped after the split, so the held-out pairs are the same with or without the cap.
    if args.max_train_samples is not None:
        train = train.select(range(min(len(train), args.max_train_samples)))
    return datasets.DatasetDict(train=train, validation=held_out["test"])


def policy_answer_pairs(args: PreferenceDataArguments, seed: int) -> datasets.Dataset:
    """`--policy_samples_from`: the policy's own answers to the source's problems after the first `num_pairs` (rows
    with a `prompt`, a right answer as `chosen`, its `final_answer`), paired by `sampled_preference_pairs` with exact
    match as the judge and the row's own answer standing in when no sample is right."""
    first, count = args.num_pairs, args.policy_sample_problems
    sizes, difficulty = {"train": first + count}, args.synthetic_difficulty
    rows = training_rows(args.dataset, args.dataset_config, synthetic_sizes=sizes, synthetic_difficulty=difficulty)
    missing = [column for column in ("prompt", "chosen", "final_answer") if column not in rows.column_names]
    if missing or len(rows) <= first:
        found = f"it lacks {missing}" if missing else f"it has {len(rows)} rows"
        raise ValueError(
            f"--policy_samples_from answers {args.dataset}'s problems after the first {first} (--num_pairs), judged "
            f"by their final_answer; {found}. Pass --dataset {SYNTHETIC_NAME}, which generates them, or rows with "
            "prompt, chosen and final_answer."
        )
    problems = rows.select(range(first, min(len(rows), first + count)))
    answers = problems["final_answer"]
    return sampled_preference_pairs(
        args.policy_samples_from,
        None,
        problems["prompt"],
        lambda index, text: verify(text, answers[index]),
        num_samples=args.policy_samples_per_problem,
        temperature=args.policy_sample_temperature,
        references=problems["chosen"],
        seed=seed,
    )


__all__ = [
    "PreferenceDataArguments",
    "load_preference_splits",
    "HH_ASSISTANT_MARKER",
    "policy_answer_pairs",
    "load_preference_jsonl",
    "pairs_from_samples",
    "preference_dataset",
    "sample_completions",
    "sampled_preference_pairs",
    "split_prompt",
    "validate_preference_row",
]
