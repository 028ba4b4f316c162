"""GSM8K-style accuracy, following lm-evaluation-harness's `gsm8k` task (version 3).

Protocol: k-shot prompts `Question: {q}\\nAnswer: {a}\\n\\n` ... `Question: {q}\\nAnswer:` with exemplars drawn from
the training set by `random.Random(seed).sample` (seed 1234, one draw per test question in order, as the harness
does); greedy generation that stops at `Question:`, `</s>`, `<|im_end|>` or EOS, the output being cut at the stop
string; two answer extractors, each scored by exact match after the harness's normalisation:

- strict-match: the first `#### <number>` in the output;
- flexible-extract: the last number-like string in the output (`(-?[$0-9.,]{2,})|(-?[0-9]+)`).

No match gives "[invalid]". Normalisation removes `,`, `$`, everything up to `#### `, one final `.`, then
lower-cases; the gold answer is the dataset's `answer` field normalised the same way (the text after `#### `).
The prompt format, the extractors and the checkers (`verify`, `verify_flexible`) are the arithmetic task's
(`toolkit.tasks.arithmetic`), so GSM8K itself, the built-in problems and PPO's reward are scored by one function.
"""

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..data import SYNTHETIC_NAME, check_jsonl
from ..generation import ModelOrPath, TokenizerOrPath, load_model_and_tokenizer
from ..tasks.arithmetic import (
    extract_flexible,
    extract_strict,
    format_prompt,
    normalize_answer,
    verify,
    verify_flexible,
)
from .task import Shard, Task, TaskData, TaskResult, gathered_outputs, generation_records, pick_split, task_source

STOP_STRINGS = ("Question:", "</s>", "<|im_end|>")  # the harness's `until`; generation also stops at EOS
LEGACY_STOP_STRINGS = ("\n\n", "Question:")  # the harness's gsm8k before version 3 (Feb 2024): also a blank line
DEFAULT_SEED = 1234  # the harness's default few-shot seed


def gsm8k_exact_match(outputs: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """Accuracy of raw model `outputs` against gold `answers` (the full `answer` field, or just the number),
    under both extractors: {"strict_match": ..., "flexible_extract": ...}."""
    if len(outputs) != len(answers):
        raise ValueError(f"{len(outputs)} outputs but {len(answers)} answers: give one gold answer per output.")
    if not outputs:
        raise ValueError("No outputs to score.")
    strict = [verify(output, gold) for output, gold in zip(outputs, answers)]
    flexible = [verify_flexible(output, gold) for output, gold in zip(outputs, answers)]
    return {"strict_match": sum(strict) / len(answers), "flexible_extract": sum(flexible) / len(answers)}


def load_gsm8k(
    source: str | os.PathLike | Dataset | Sequence[Mapping[str, str]], where: str | None = None
) -> list[dict[str, str]]:
    """GSM8K examples as `{"question", "answer"}` dicts, from a JSON Lines file, a `datasets.Dataset` or a list
    (`where` names them in errors)."""
    if isinstance(source, (str, os.PathLike)):
        check_jsonl(Path(source))  # a bad line (or encoding) is named by file and line
        lines = Path(source).read_text(encoding="utf-8").split("\n")
        rows = [json.loads(line) for line in lines if line.strip()]
        where = str(source)
    else:
        rows, where = list(source), where or type(source).__name__
    if not rows:
        raise ValueError(f"{where} holds no examples: expected one JSON object per line with question and answer.")
    for index, row in enumerate(rows):
        missing = [key for key in ("question", "answer") if not isinstance(row.get(key), str)]
        if missing:
            found = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(
                f"{where}, example {index + 1}: lacks the field(s) {missing} as text (found {found}). GSM8K "
                "examples need 'question' and 'answer', the final answer after '#### '."
            )
    return [{"question": row["question"], "answer": row["answer"]} for row in rows]


def fewshot_prompts(
    questions: Sequence[str],
    train: Sequence[Mapping[str, str]],
    num_fewshot: int = 5,
    seed: int = DEFAULT_SEED,
) -> list[str]:
    """k-shot chain-of-thought prompts: `num_fewshot` training exemplars, then the question, blank-line separated.

    One `random.Random(seed)` draws the exemplars of every question in turn, so the prompts are deterministic and
    the same as the harness's for the same training set order.
    """
    if num_fewshot < 0:
        raise ValueError(f"num_fewshot must be >= 0, got {num_fewshot}.")
    if num_fewshot > len(train):
        raise ValueError(f"num_fewshot={num_fewshot} but the training set has only {len(train)} examples.")
    rng = random.Random(seed)
    prompts = []
    for question in questions:
        exemplars = rng.sample(list(train), num_fewshot) if num_fewshot else []
        shots = [format_prompt(example["question"], example["answer"]) for example in exemplars]
        prompts.append("\n\n".join([*shots, format_prompt(question)]))
    return prompts


@dataclass(frozen=True)
class Gsm8kResult:
    """Accuracy under both extractors, the per-example records, and the protocol; `str(result)` prints them."""

    strict_match: float
    flexible_extract: float
    num_examples: int
    records: list[dict]
    generation: str | None = None  # how the outputs were produced, when they were generated here

    @property
    def protocol(self) -> str:
        """How the numbers were computed."""
        generation = f"{self.generation}; " if self.generation else ""
        return (
            f"gsm8k exact match over {self.num_examples} examples: {generation}strict-match = first `#### <number>`, "
            "flexible-extract = last number; lm-evaluation-harness normalisation (no `,` `$`, text after `#### `, "
            "no final `.`, lower case)"
        )

    def to_dict(self) -> dict:
        """The accuracies, the counts and the protocol (records left out)."""
        return {
            "strict_match": self.strict_match,
            "flexible_extract": self.flexible_extract,
            "num_examples": self.num_examples,
            "protocol": self.protocol,
        }

    def save_records(self, path: str | os.PathLike) -> None:
        """Write one JSON object per example (question, prompt, output, extracted answers, gold, correct flags)."""
        with Path(path).open("w", encoding="utf-8") as file:
            for record in self.records:
                file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def __str__(self) -> str:
        return (
            f"strict-match {self.strict_match:.4f}, flexible-extract {self.flexible_extract:.4f} "
            f"({self.num_examples} examples)\nprotocol: {self.protocol}"
        )


def score_gsm8k(
    examples: Sequence[Mapping[str, str]],
    outputs: Sequence[str],
    prompts: Sequence[str] | None = None,
    generation: str | None = None,
) -> Gsm8kResult:
    """Score model outputs (already cut at the stop strings) against the examples' gold answers; `generation`
    describes how the outputs were produced, for the protocol."""
    if len(outputs) != len(examples):
        raise ValueError(f"{len(outputs)} outputs for {len(examples)} examples: give one output per example.")
    if not examples:
        raise ValueError("No examples to score.")
    records = []
    for index, (example, output) in enumerate(zip(examples, outputs)):
        gold = normalize_answer(example["answer"])
        strict, flexible = extract_strict(output), extract_flexible(output)
        records.append(
            {
                "index": index,
                "question": example["question"],
                "prompt": prompts[index] if prompts is not None else None,
                "output": output,
                "strict_answer": strict,
                "flexible_answer": flexible,
                "gold": gold,
                "strict_correct": verify(output, gold),
                "flexible_correct": verify_flexible(output, gold),
            }
        )
    return Gsm8kResult(
        strict_match=sum(record["strict_correct"] for record in records) / len(records),
        flexible_extract=sum(record["flexible_correct"] for record in records) / len(records),
        num_examples=len(records),
        records=records,
        generation=generation,
    )


def evaluate_gsm8k(
    model: ModelOrPath,
    tokenizer: TokenizerOrPath,
    test: str | os.PathLike | Dataset | Sequence[Mapping[str, str]],
    train: str | os.PathLike | Dataset | Sequence[Mapping[str, str]] | None = None,
    *,
    num_fewshot: int = 5,
    seed: int = DEFAULT_SEED,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    stop_strings: Sequence[str] = STOP_STRINGS,
    records_path: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> Gsm8kResult:
    """Generate answers to GSM8K questions and score them (see the module docstring for the protocol).

    Args:
        model, tokenizer: a causal LM and a tokenizer with an EOS token (used as pad token if there is none).
        test: the questions to answer: a JSONL path, a `datasets.Dataset` or a list of `{"question", "answer"}`.
        train: where the exemplars come from (same forms); needed when `num_fewshot > 0`.
        num_fewshot: exemplars per prompt (5 in the harness).
        seed: few-shot sampling seed.
        limit: score only the first `limit` test examples.
        batch_size: prompts per `generate` call.
        max_new_tokens: generation budget (256 in the harness); prompts lose tokens from the left to fit.
        stop_strings: where outputs are cut.
        records_path: if given, per-example records are written there as JSON Lines.
        show_progress: show a tqdm bar over the batches.
    """
    model, tokenizer = load_model_and_tokenizer(model, tokenizer)
    examples = load_gsm8k(test)[:limit]
    if num_fewshot > 0 and train is None:
        raise ValueError(f"num_fewshot={num_fewshot} needs a training set for the exemplars: pass train=...")
    exemplars = load_gsm8k(train) if num_fewshot > 0 else []
    prompts = fewshot_prompts([example["question"] for example in examples], exemplars, num_fewshot, seed)
    shard = Shard(batch_size=batch_size, show_progress=show_progress)
    records = generation_records(
        model, tokenizer, prompts, shard, max_new_tokens=max_new_tokens, stop_strings=stop_strings
    )
    generation = generation_protocol(num_fewshot, seed, max_new_tokens, stop_strings)
    result = score_gsm8k(examples, gathered_outputs(records, len(prompts)), prompts, generation)
    if records_path is not None:
        result.save_records(records_path)
    return result


def generation_protocol(num_fewshot: int, seed: int, max_new_tokens: int, stop_strings: Sequence[str]) -> str:
    return (
        f"{num_fewshot}-shot `Question:/Answer:` prompts (seed {seed}), greedy, at most {max_new_tokens} new tokens, "
        f"stop at {list(stop_strings)} or EOS"
    )


@dataclass
class Gsm8kArguments:
    gsm8k_data: str = field(
        default=SYNTHETIC_NAME,
        metadata={
            "help": "GSM8K questions: a data file (JSON Lines, ...) with question and answer, or 'arithmetic' (the "
            "built-in test problems)."
        },
    )
    gsm8k_fewshot_data: str | None = field(
        default=SYNTHETIC_NAME,
        metadata={"help": "Where exemplars come from: a GSM8K train file, 'arithmetic' (built-in train), or None."},
    )
    num_fewshot: int = field(default=5, metadata={"help": "GSM8K exemplars per prompt (5 in the harness)."})
    fewshot_seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of the exemplar draw (harness: 1234)."})
    gsm8k_max_new_tokens: int = field(default=256, metadata={"help": "GSM8K generation budget (256 in the harness)."})


class Gsm8kTask(Task):
    """k-shot exact match on a GSM8K JSONL file or the arithmetic task's test problems (lm-evaluation-harness)."""

    name = "gsm8k"
    arguments = Gsm8kArguments
    headline = (("strict_match", "higher"), ("flexible_extract", "higher"))
    paired_outcomes = {"strict_match": "strict_correct", "flexible_extract": "flexible_correct"}

    def examples(self, source: str, split: str, size: int) -> list[dict]:
        raw = task_source(self.args, source, split, size)
        return load_gsm8k(raw[split] if split in raw else pick_split(raw, None, source), where=source)

    def load(self) -> TaskData:
        args = self.args
        examples = self.examples(args.gsm8k_data, "test", args.synthetic_size)[: args.limit]
        if args.num_fewshot > 0 and args.gsm8k_fewshot_data is None:
            raise ValueError(
                f"--num_fewshot {args.num_fewshot} needs --gsm8k_fewshot_data (a train JSONL or 'arithmetic')."
            )
        exemplars = (
            self.examples(args.gsm8k_fewshot_data, "train", args.synthetic_fewshot_size) if args.num_fewshot else []
        )
        questions = [example["question"] for example in examples]
        return TaskData(
            args.gsm8k_data, fewshot_prompts(questions, exemplars, args.num_fewshot, args.fewshot_seed), examples
        )

    def records(self, model, tokenizer, data: TaskData, shard: Shard) -> list[dict]:
        max_new_tokens = self.args.gsm8k_max_new_tokens
        return generation_records(
            model, tokenizer, data.items, shard, max_new_tokens=max_new_tokens, stop_strings=STOP_STRINGS
        )

    def score(self, model, data: TaskData, records: list[dict]) -> TaskResult:
        args = self.args
        generation = generation_protocol(args.num_fewshot, args.fewshot_seed, args.gsm8k_max_new_tokens, STOP_STRINGS)
        result = score_gsm8k(data.golds, gathered_outputs(records, len(data.items)), data.items, generation)
        return TaskResult(result, result.protocol, result.records)


__all__ = [
    "Gsm8kArguments",
    "Gsm8kResult",
    "Gsm8kTask",
    "LEGACY_STOP_STRINGS",
    "STOP_STRINGS",
    "evaluate_gsm8k",
    "fewshot_prompts",
    "gsm8k_exact_match",
    "load_gsm8k",
    "score_gsm8k",
]
