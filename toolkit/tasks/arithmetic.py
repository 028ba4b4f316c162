"""The arithmetic task: GSM8K-style word problems, their prompt, their splits and the one answer checker.

Every stage that reads or writes these problems goes through this module: `arithmetic_source` is the `arithmetic`
data source every job reads (training text, preference pairs, prompts with their gold, evaluation problems), and
`verify` judges PPO's exact-match reward, the policy-sampled pairs, the GSM8K-style metric and `toolkit eval`.

- **Problems.** Difficulty d means exactly d calculation steps (1 = one operation on small numbers, 3 = three steps
  with multiplication and exact division). A solution is GSM8K's: one line per calculation with a `<<48/2=24>>`
  calculator annotation, then `#### 24`. The templates are in `arithmetic_templates.py`.
- **Prompt.** lm-evaluation-harness's gsm8k format: `Question: {question}\\nAnswer:`, completed by ` {solution}`.
- **Splits.** A question's split (80% train, 10% validation, 10% test) is a fixed hash of its text: no seed enters
  it, so no training seed can move a test question into training. `seed` only picks which problems are drawn.
- **Checking.** `verify(output, gold)` is lm-evaluation-harness's gsm8k strict-match: the number after the first
  `#### ` (with the space), compared after its normalisation (no `,` `$`, text after `#### `, one final `.`, lower
  case). `verify_flexible` is its flexible-extract (the last number in the output).
"""

import hashlib
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import datasets

from .arithmetic_templates import (
    ANNOTATION,
    CALCULATION,
    DIFFICULTIES,
    OPERATIONS,
    TEMPLATES,
    Problem,
    render_calculation,
)

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
# The hash's salt is the string seed 0 used when splits were salted by the seed: the same splits as before.
SPLIT_SALT = "0"
PROMPT_TEMPLATE = "Question: {question}\nAnswer:"

STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# Applied in this order, then lower-casing: the harness's `regexes_to_ignore` for gsm8k.
IGNORED_PATTERNS = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"


# ---- the task's flag -----------------------------------------------------------------------------------------------


def check_difficulty(levels: Iterable[int], flag: str = "--synthetic_difficulty") -> None:
    levels = list(levels)
    if not levels or set(levels) - set(DIFFICULTIES):
        raise ValueError(f"{flag} takes levels from {list(DIFFICULTIES)} (calculation steps), got {levels}.")


@dataclass
class ArithmeticDifficultyArguments:
    """The difficulty of the arithmetic task's problems, shared by every job that reads the task (its data, its
    preference pairs, its prompts, its evaluation)."""

    synthetic_difficulty: list[int] = field(
        default_factory=lambda: [1, 2],
        metadata={"help": "'arithmetic': difficulty levels (calculation steps, 1-3) to mix."},
    )

    def __post_init__(self):
        check_difficulty(self.synthetic_difficulty)


# ---- prompt --------------------------------------------------------------------------------------------------------


def format_prompt(question: str, answer: str | None = None) -> str:
    """`Question: {q}\\nAnswer:` for the question to answer, `Question: {q}\\nAnswer: {a}` for a worked example."""
    prompt = PROMPT_TEMPLATE.format(question=question)
    return prompt if answer is None else f"{prompt} {answer}"


def as_prompt_completion(example: Mapping[str, str]) -> dict[str, str]:
    """A problem as training text: `prompt` and `completion` (SFT with completion-only loss), `text` (the two
    together) and `document` (question, newline, solution: the plain text pretraining reads, without the format)."""
    prompt = format_prompt(example["question"])
    completion = f" {example['answer']}"
    return {
        "prompt": prompt,
        "completion": completion,
        "text": prompt + completion,
        "document": f"{example['question']}\n{example['answer']}",
    }


TRAINING_TEXT_COLUMNS = ("prompt", "completion", "text", "document")


def _training_text_columns(batch: Mapping[str, list]) -> dict[str, list[str]]:
    rows = [as_prompt_completion({"question": q, "answer": a}) for q, a in zip(batch["question"], batch["answer"])]
    return {name: [row[name] for row in rows] for name in TRAINING_TEXT_COLUMNS}


# ---- checking ------------------------------------------------------------------------------------------------------


def extract_strict(output: str) -> str:
    """strict-match: the number after the first `#### `, or "[invalid]"."""
    match = STRICT_PATTERN.search(output)
    return match.group(1).strip() if match else INVALID


def extract_flexible(output: str) -> str:
    """flexible-extract: the last number-like string (it may hold `$`, `,` and `.`), or "[invalid]"."""
    matches = FLEXIBLE_PATTERN.findall(output)
    if not matches:
        return INVALID
    # Each match is a pair of groups, one of them empty: take the one that matched.
    return next((group for group in matches[-1] if group), INVALID).strip()


def normalize_answer(text: str) -> str:
    """The harness's exact-match normalisation: drop `,`, `$`, everything up to `#### `, one final `.`; lower case."""
    for pattern in IGNORED_PATTERNS:
        text = re.sub(pattern, "", text)
    return text.lower()


def verify(output: str, gold: str) -> bool:
    """Whether `output` answers `gold` under strict-match. `gold` is a solution ending in `#### N`, or N itself."""
    return normalize_answer(extract_strict(output)) == normalize_answer(gold)


def verify_flexible(output: str, gold: str) -> bool:
    """Whether the last number in `output` answers `gold` (flexible-extract)."""
    return normalize_answer(extract_flexible(output)) == normalize_answer(gold)


def gold_answer(solution: str) -> str | None:
    """The normalised number a worked solution ends with (`#### N`), or None when it has no such line."""
    extracted = extract_strict(solution)
    return None if extracted == INVALID else normalize_answer(extracted)


# ---- problems and splits -------------------------------------------------------------------------------------------


def split_of(question: str) -> str:
    """The split a question belongs to: a fixed hash of its text, so splits never share one, whatever the seed."""
    digest = hashlib.blake2b(f"{SPLIT_SALT}:{question}".encode(), digest_size=8).digest()
    position = int.from_bytes(digest, "big") / 2**64
    for split, fraction in SPLIT_FRACTIONS.items():
        if position < fraction:
            return split
        position -= fraction
    return split  # float rounding can leave `position` a hair above the last fraction


def _levels(difficulty: int | Iterable[int]) -> tuple[int, ...]:
    levels = (difficulty,) if isinstance(difficulty, int) else tuple(difficulty)
    if not levels or any(level not in TEMPLATES for level in levels):
        raise ValueError(f"difficulty must be one of {DIFFICULTIES} or a collection of them, got {difficulty!r}.")
    return levels


def _generate(
    sizes: dict[str, int], difficulty: int | Iterable[int], seed: int, calculator_annotations: bool
) -> dict[str, datasets.Dataset]:
    """Draw problems from one seeded stream and route each to its split until every split has its size."""
    for split in sizes:
        if split not in SPLIT_FRACTIONS:
            raise ValueError(f"Unknown split {split!r}; use one of {', '.join(SPLIT_FRACTIONS)}.")
    levels = _levels(difficulty)
    rng = random.Random(seed)
    rows = {split: {"question": [], "answer": [], "final_answer": [], "difficulty": []} for split in sizes}
    missing = {split: size for split, size in sizes.items() if size > 0}
    seen = set()
    # The smallest split receives ~10% of the draws; far more draws than that means the templates are exhausted.
    max_draws = 100 * sum(sizes.values()) + 1000
    for _ in range(max_draws):
        if not missing:
            break
        level = rng.choice(levels)
        question, lines, answer = rng.choice(TEMPLATES[level])(rng, Problem(rng))
        split = split_of(question)
        if split not in missing or question in seen:
            continue
        seen.add(question)
        solution = "\n".join([*lines, f"#### {answer}"])
        if not calculator_annotations:
            solution = ANNOTATION.sub("", solution)
        split_rows = rows[split]
        split_rows["question"].append(question)
        split_rows["answer"].append(solution)
        split_rows["final_answer"].append(str(answer))
        split_rows["difficulty"].append(level)
        missing[split] -= 1
        if missing[split] == 0:
            del missing[split]
    if missing:
        raise ValueError(
            f"Could not draw {sizes} distinct problems at difficulty {levels}: the templates ran out of new "
            "questions. Ask for fewer examples or include higher difficulties."
        )
    return {split: datasets.Dataset.from_dict(split_rows) for split, split_rows in rows.items()}


def make_arithmetic_dataset(
    split: str = "train",
    num_examples: int = 1000,
    difficulty: int | Iterable[int] = DIFFICULTIES,
    seed: int = 0,
    calculator_annotations: bool = True,
) -> datasets.Dataset:
    """GSM8K-style word problems with columns `question`, `answer`, `final_answer`, `difficulty`.

    `answer` is the worked solution ending in `#### N`, `final_answer` is N as a string. The same arguments give
    the same rows, and the rows equal those of `arithmetic_splits(...)[split]` with the same seed and difficulty.

    Args:
        split: "train", "validation" or "test"; a question is in one split only, whatever the seed.
        num_examples: number of distinct problems.
        difficulty: a level in 1..3 (= number of calculation steps), or several to mix uniformly.
        seed: picks which problems are drawn (not which split a question is in).
        calculator_annotations: keep GSM8K's `<<4*6=24>>` annotations in the solutions.
    """
    return _generate({split: num_examples}, difficulty, seed, calculator_annotations)[split]


def arithmetic_splits(
    train_size: int = 1000,
    validation_size: int = 100,
    test_size: int = 100,
    difficulty: int | Iterable[int] = DIFFICULTIES,
    seed: int = 0,
    calculator_annotations: bool = True,
) -> datasets.DatasetDict:
    """Train, validation and test splits of `make_arithmetic_dataset`, with no question in two splits."""
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    return datasets.DatasetDict(_generate(sizes, difficulty, seed, calculator_annotations))


# ---- corrupted solutions and preference pairs ----------------------------------------------------------------------


def _with_wrong_step(answer_text: str, calculations: list[re.Match], target: int, wrong: int) -> str | None:
    """The solution with calculation `target` giving `wrong`, carried into the later calculations that use it.

    None when that makes a later step fractional or negative, or leaves the final answer unchanged.
    """
    first = calculations[target]
    annotated = "<<" in first[0]
    pieces = [
        answer_text[: first.start()],
        render_calculation(first["left"], first["op"], first["right"], wrong, annotated),
    ]
    end, final = first.end(), wrong
    changed = {first["result"]: str(wrong)}
    for match in calculations[target + 1 :]:
        left = changed.get(match["left"], match["left"])
        right = changed.get(match["right"], match["right"])
        if (left, right) == (match["left"], match["right"]):
            final = int(match["result"])
            continue
        if match["op"] == "/" and int(left) % int(right) != 0:
            return None
        final = OPERATIONS[match["op"]](int(left), int(right))
        if final < 0:
            return None
        changed[match["result"]] = str(final)
        pieces += [answer_text[end : match.start()], render_calculation(left, match["op"], right, final, annotated)]
        end = match.end()
    if str(final) == calculations[-1]["result"]:
        return None
    return STRICT_PATTERN.sub(f"#### {final}", "".join(pieces) + answer_text[end:], count=1)


def corrupt_solution(answer_text: str, rng: random.Random) -> str:
    """A plausible but wrong solution: one calculation gets a wrong result, carried through the later steps.

    The final `#### N` always differs from the original one, so (original, corrupted) makes a (chosen, rejected)
    pair for reward modelling. Text whose last calculation is not the final answer only gets a wrong final answer.
    """
    gold = gold_answer(answer_text)
    if gold is None:
        raise ValueError("The solution has no final answer line `#### N`.")
    calculations = list(CALCULATION.finditer(answer_text))
    if calculations and calculations[-1]["result"] == gold:
        for _ in range(20):
            target = rng.randrange(len(calculations))
            result = int(calculations[target]["result"])
            wrong = result + rng.choice((-1, 1)) * rng.randint(1, max(2, result // 4))
            corrupted = _with_wrong_step(answer_text, calculations, target, wrong) if wrong >= 0 else None
            if corrupted is not None:
                return corrupted
        # An off-by-one slip in the last step always works.
        return _with_wrong_step(answer_text, calculations, len(calculations) - 1, int(gold) + 1)
    return STRICT_PATTERN.sub(f"#### {int(float(gold)) + rng.randint(1, 9)}", answer_text, count=1)


def rejected_solutions(answers: Iterable[str], seed: int = 0) -> list[str]:
    """The rejected side of each problem's preference pair: its solution with one wrong calculation, as a
    completion (one seeded stream, so the first N problems get the same ones whatever N)."""
    rng = random.Random(seed)
    return [f" {corrupt_solution(answer, rng)}" for answer in answers]


def arithmetic_preference_pairs(
    num_pairs: int = 1000,
    split: str = "train",
    difficulty: int | Iterable[int] = DIFFICULTIES,
    seed: int = 0,
) -> datasets.Dataset:
    """Verifiable preference pairs: the correct worked solution is chosen, the same solution with one wrong
    calculation (carried through to a wrong final answer) is rejected.

    Columns: `prompt` (`format_prompt`), `chosen` and `rejected` (completions), `final_answer`.
    """
    problems = make_arithmetic_dataset(split=split, num_examples=num_pairs, difficulty=difficulty, seed=seed)
    return datasets.Dataset.from_dict(
        {
            "prompt": [format_prompt(question) for question in problems["question"]],
            "chosen": [f" {answer}" for answer in problems["answer"]],
            "rejected": rejected_solutions(problems["answer"], seed),
            "final_answer": problems["final_answer"],
        }
    )


# ---- the task as a data source -------------------------------------------------------------------------------------


@dataclass
class ArithmeticSizeArguments(ArithmeticDifficultyArguments):
    """How many problems a training job reads when its data is the task (`--dataset arithmetic`)."""

    synthetic_train_size: int = field(default=2000, metadata={"help": "'arithmetic': training problems."})
    synthetic_validation_size: int = field(
        default=200, metadata={"help": "'arithmetic': validation problems (and as many test problems)."}
    )

    def synthetic_sizes(self) -> dict[str, int]:
        """The splits to draw; without validation problems the run carves its validation rows out of training."""
        validation = self.synthetic_validation_size
        return {
            "train": self.synthetic_train_size,
            **({"validation": validation, "test": validation} if validation else {}),
        }


def arithmetic_source(
    sizes: Mapping[str, int], difficulty: int | Iterable[int] = DIFFICULTIES
) -> datasets.DatasetDict:
    """The task as a dataset, as every job reads `--dataset arithmetic`: the first `sizes[split]` problems of each
    split named (seed 0: a fixed draw, like a dataset on disk), with a column for each use.

    - `question`, `answer` (the worked solution), `final_answer`, `difficulty`: GSM8K's columns, for evaluation, and
      `reference` (the worked solution again), BLEU's;
    - `prompt`, `completion`, `text`, `document` (`as_prompt_completion`): SFT and pretraining; `prompt` and
      `final_answer` are also the prompts online RL samples from and the exact-match reward's gold;
    - `chosen` (the solution) and `rejected` (`rejected_solutions`): a preference pair, for reward models and DPO.
    """
    views = {}
    for name, problems in _generate(dict(sizes), difficulty, 0, True).items():
        columns, answers = problems.to_dict(), problems["answer"]
        columns.update(_training_text_columns(columns), reference=answers, rejected=rejected_solutions(answers))
        views[name] = datasets.Dataset.from_dict({**columns, "chosen": columns["completion"]})
    return datasets.DatasetDict(views)


__all__ = [
    "ArithmeticDifficultyArguments",
    "ArithmeticSizeArguments",
    "check_difficulty",
    "DIFFICULTIES",
    "INVALID",
    "PROMPT_TEMPLATE",
    "SPLIT_FRACTIONS",
    "arithmetic_preference_pairs",
    "arithmetic_source",
    "arithmetic_splits",
    "as_prompt_completion",
    "corrupt_solution",
    "extract_flexible",
    "extract_strict",
    "format_prompt",
    "gold_answer",
    "make_arithmetic_dataset",
    "normalize_answer",
    "rejected_solutions",
    "split_of",
    "verify",
    "verify_flexible",
]
