"""What an evaluation task is, and how its work is shared out over processes.

A task (`perplexity`, `gsm8k`, `bleu`: one file each, registered in `toolkit.evaluation.TASKS`) defines once:
its flags (a dataclass, each field prefixed with the task's name), how it loads its data (once, for every model),
what one process computes for its share of the work (`records`), and how the gathered records become the result
(`score`). The library functions (`perplexity_of_texts`, `evaluate_gsm8k`, `generate_and_score_bleu`) are the same
code run in one process, and `toolkit eval` runs it in N.

Sharding: the unit of work is one batch of the single-process run (`batch_size` perplexity windows or prompts).
Each process takes a contiguous run of whole batches, as accelerate's `split_between_processes` splits a list,
without padding: no example is scored twice. The per-example records are gathered in the global order and scored
once, so every batch holds exactly what it holds in one process and the numbers equal, bit for bit, the
single-process ones, whatever the number of processes.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import load_raw
from ..generation import generate_greedy
from ..tasks.arithmetic import ArithmeticDifficultyArguments


@dataclass(frozen=True)
class Shard:
    """One process's part of a task's work: which process, of how many, in batches of what size."""

    process_index: int = 0
    num_processes: int = 1
    batch_size: int = 8
    show_progress: bool = False

    def share(self, num_items: int) -> range:
        return batch_share(num_items, self.batch_size, self.process_index, self.num_processes)


@dataclass(frozen=True)
class TaskData:
    """What a task scores, loaded once for every model: the items the processes share out (documents or prompts)
    and what each is scored against (GSM8K examples, BLEU references)."""

    source: str
    items: list[str]
    golds: list[Any] = field(default_factory=list)

    @property
    def num_examples(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class TaskResult:
    """A task's result object (with `to_dict()`), its protocol in words, and one record per example."""

    result: Any
    protocol: str
    records: list[dict]


class Task:
    """Base class of the evaluation tasks. `args` holds the task's fields (and the shared `limit`, `synthetic_*`)."""

    name: ClassVar[str]
    arguments: ClassVar[type]  # the dataclass of the task's flags
    headline: ClassVar[tuple[tuple[str, str], ...]]  # (metric, "lower" or "higher" is better) for tables and cards
    # metric -> the per-example record field that is right/wrong, for comparing two models on the same examples
    paired_outcomes: ClassVar[dict[str, str]] = {}

    def __init__(self, args):
        self.args = args

    def load(self) -> TaskData:
        raise NotImplementedError

    def records(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: TaskData, shard: Shard
    ) -> list[dict]:
        raise NotImplementedError

    def score(self, model: PreTrainedModel, data: TaskData, records: list[dict]) -> TaskResult:
        raise NotImplementedError


def process_share(num_items: int, process_index: int, num_processes: int) -> range:
    """The contiguous items of one process, split as accelerate's `split_between_processes` does without padding:
    the first `num_items % num_processes` processes take one more. Shares are disjoint and cover every item."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index {process_index} is not in range for {num_processes} processes.")
    per_process, extra = divmod(num_items, num_processes)
    start = process_index * per_process + min(process_index, extra)
    return range(start, start + per_process + (process_index < extra))


def batch_share(num_items: int, batch_size: int, process_index: int, num_processes: int) -> range:
    """The items of one process when whole batches of `batch_size` are shared out, so every batch is the batch of
    the single-process run and computes the same numbers."""
    batches = process_share(math.ceil(num_items / batch_size), process_index, num_processes)
    return range(min(batches.start * batch_size, num_items), min(batches.stop * batch_size, num_items))


def check_gathered(records: list[dict], key: str, expected: int | None = None) -> None:
    """Gathered records must hold every index exactly once, in order: a gap or a duplicate would bias the metric."""
    indices = [record[key] for record in records]
    if not indices or indices != list(range(len(indices))) or (expected is not None and len(indices) != expected):
        raise RuntimeError(
            f"The gathered records do not cover every {key} exactly once in order ({len(indices)} records"
            f"{'' if expected is None else f', {expected} expected'}). The processes disagree on the data: make "
            "sure every process reads the same files with the same arguments."
        )


def generation_records(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    shard: Shard,
    *,
    max_new_tokens: int,
    stop_strings: Sequence[str],
) -> list[dict]:
    """Greedy outputs for this process's share of the prompts (whole batches): records {"index", "output"}."""
    share = shard.share(len(prompts))
    if not share:
        return []
    outputs = generate_greedy(
        model,
        tokenizer,
        prompts[share.start : share.stop],
        max_new_tokens=max_new_tokens,
        batch_size=shard.batch_size,
        stop_strings=stop_strings,
        show_progress=shard.show_progress,
    )
    return [{"index": index, "output": output} for index, output in zip(share, outputs)]


def gathered_outputs(records: list[dict], num_prompts: int) -> list[str]:
    check_gathered(records, "index", num_prompts)
    return [record["output"] for record in records]


@dataclass
class ArithmeticSourceArguments(ArithmeticDifficultyArguments):
    """How many of the built-in task's problems an evaluation task reads when its data is `arithmetic`."""

    synthetic_size: int = field(
        default=200, metadata={"help": "'arithmetic': test problems generated (then cut to limit)."}
    )
    synthetic_fewshot_size: int = field(default=200, metadata={"help": "'arithmetic': exemplar pool (train split)."})


def task_source(
    args: ArithmeticSourceArguments, source: str, split: str, size: int, **options
) -> datasets.DatasetDict:
    """A task's data as `load_raw` reads it (`options`: its config_name, text_sample_by), the built-in task being its
    first `size` problems of `split` only (its test questions were never trained on), or `--limit` problems when
    that asks for more (the draw is the same stream, so the first problems stay)."""
    limit = getattr(args, "limit", None) if split == "test" else None
    sizes = {split: max(size, limit or 0)}
    return load_raw(source, synthetic_sizes=sizes, synthetic_difficulty=args.synthetic_difficulty, **options)


def pick_split(raw: datasets.DatasetDict, split: str | None, source: str) -> datasets.Dataset:
    """The named split; by default "test" if there is one, else the only split (a local file's "train")."""
    if split is None:
        if "test" in raw or len(raw) == 1:
            return raw["test" if "test" in raw else next(iter(raw))]
        raise ValueError(f"{source} has splits {list(raw)} and none is 'test': name the one to score.")
    if split not in raw:
        raise ValueError(f"Split {split!r} not found in {source}; it has splits {list(raw)}.")
    return raw[split]
