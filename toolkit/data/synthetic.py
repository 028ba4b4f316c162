"""GSM8K-style arithmetic word problems, generated on the fly (nothing to download).

Each problem has a step-by-step solution in GSM8K's format: one line per calculation, with a `<<48/2=24>>`
calculator annotation, then a final line `#### 24`. Difficulty d means exactly d calculation steps:
1 = one operation on small numbers, 2 = two steps, 3 = three steps including multiplication and exact division.

Splits never share a question: every question is assigned to train, validation or test by a hash of its text
(salted with the seed), and each split keeps the questions that hash to it. Use the same `seed` for all splits.
"""

import hashlib
import operator
import random
import re
from collections.abc import Callable, Iterable

import datasets

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
DIFFICULTIES = (1, 2, 3)

NAMES = (
    ("Mia", "she"), ("Leo", "he"), ("Ava", "she"), ("Noah", "he"), ("Zoe", "she"), ("Liam", "he"),
    ("Emma", "she"), ("Omar", "he"), ("Nora", "she"), ("Ravi", "he"), ("Lily", "she"), ("Sam", "he"),
    ("Ella", "she"), ("Jack", "he"), ("Sara", "she"), ("Ben", "he"), ("Ana", "she"), ("Max", "he"),
    ("Ivy", "she"), ("Tom", "he"), ("Maya", "she"), ("Luis", "he"), ("Chloe", "she"), ("Ethan", "he"),
)  # fmt: skip
ITEMS = (
    "apples", "marbles", "stickers", "pencils", "cookies", "books", "cards", "shells", "crayons", "balloons",
    "buttons", "stamps", "candies", "beads", "toy cars", "oranges", "erasers", "coins", "eggs", "muffins",
)  # fmt: skip
CONTAINERS = ("boxes", "bags", "packs", "jars", "baskets", "crates")
# (verb, base form, unit): "Mia reads 12 pages ... How many pages does she read?"
ACTIVITIES = (
    ("reads", "read", "pages"),
    ("runs", "run", "km"),
    ("swims", "swim", "laps"),
    ("walks", "walk", "miles"),
    ("practices piano for", "practice", "minutes"),
    ("bakes", "bake", "cakes"),
)
# (singular, plural) of things bought at a price
GOODS = (
    ("book", "books"),
    ("pen", "pens"),
    ("toy", "toys"),
    ("hat", "hats"),
    ("ticket", "tickets"),
    ("notebook", "notebooks"),
    ("plant", "plants"),
    ("mug", "mugs"),
)
FOODS = ("cookies", "muffins", "rolls", "cupcakes", "pies", "bagels")
# (plant, produce)
CROPS = (("tomato", "tomatoes"), ("pepper", "peppers"), ("bean", "beans"), ("strawberry", "strawberries"))
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}
# A calculation as the solutions write it: "4*6 = <<4*6=24>>24", or "4*6 = 24" without annotations.
CALCULATION = re.compile(r"(?P<left>\d+)(?P<op>[-+*/])(?P<right>\d+) = (?:<<[^>]*>>)?(?P<result>\d+)")
ANNOTATION = re.compile(r"<<[^>]*>>")
FINAL_ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def _render(left: str, op: str, right: str, result: int, annotated: bool) -> str:
    expression = f"{left}{op}{right}"
    return f"{expression} = <<{expression}={result}>>{result}" if annotated else f"{expression} = {result}"


def calc(left: int, op: str, right: int) -> tuple[str, int]:
    """GSM8K's calculation text `left op right = <<left op right=result>>result`, and the result."""
    if op == "/" and left % right != 0:
        raise ValueError(f"{left}/{right} is not an integer")
    result = OPERATIONS[op](left, right)
    return _render(str(left), op, str(right), result, annotated=True), result


class Problem:
    """The names and things one problem is about, drawn from the generator's random stream."""

    def __init__(self, rng: random.Random):
        (self.name, pronoun), (self.other, _) = rng.sample(NAMES, 2)
        self.pronoun, self.Pronoun = pronoun, pronoun.capitalize()  # "she", and "She" to start a sentence
        self.item = rng.choice(ITEMS)
        self.container = rng.choice(CONTAINERS)


# Templates: (rng, problem) -> (question, solution lines, answer). Each level-d template has d calculations.


def gain(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    step, total = calc(a, "+", b)
    question = f"{p.name} has {a} {p.item}. {p.Pronoun} gets {b} more. How many {p.item} does {p.name} have now?"
    return question, [f"{p.name} has {step} {p.item} now."], total


def give_away(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    a = rng.randint(5, 30)
    b = rng.randint(1, a - 2)
    step, left = calc(a, "-", b)
    question = f"{p.name} has {a} {p.item} and gives {b} to {p.other}. How many {p.item} does {p.name} have left?"
    return question, [f"{p.name} has {step} {p.item} left."], left


def groups(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    a, b = rng.randint(2, 9), rng.randint(2, 10)
    step, total = calc(a, "*", b)
    question = f"{p.name} has {a} {p.container} with {b} {p.item} in each. How many {p.item} does {p.name} have?"
    return question, [f"{p.name} has {step} {p.item}."], total


def share(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    friends, each = rng.randint(2, 6), rng.randint(2, 10)
    step, _ = calc(friends * each, "/", friends)
    question = (
        f"{p.name} shares {friends * each} {p.item} equally among {friends} friends. "
        f"How many {p.item} does each friend get?"
    )
    return question, [f"Each friend gets {step} {p.item}."], each


def two_days(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    verb, base, unit = rng.choice(ACTIVITIES)
    first_day, second_day = rng.sample(DAYS, 2)
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    step, total = calc(a, "+", b)
    question = (
        f"{p.name} {verb} {a} {unit} on {first_day} and {b} {unit} on {second_day}. "
        f"How many {unit} does {p.pronoun} {base} in all?"
    )
    return question, [f"{p.Pronoun} {verb} {step} {unit} in all."], total


def spend(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    (first, _), (second, _) = rng.sample(GOODS, 2)
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    step, total = calc(a, "+", b)
    question = f"{p.name} buys a {first} for ${a} and a {second} for ${b}. How many dollars does {p.pronoun} spend?"
    return question, [f"{p.Pronoun} spends {step} dollars."], total


def packs_then_give(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    packs, per_pack = rng.randint(2, 9), rng.randint(3, 12)
    first, total = calc(packs, "*", per_pack)
    given = rng.randint(1, total - 2)
    second, left = calc(total, "-", given)
    question = (
        f"{p.name} buys {packs} {p.container} of {p.item} with {per_pack} in each and gives {given} away. "
        f"How many are left?"
    )
    return question, [f"{p.Pronoun} buys {first}.", f"{second} are left."], left


def collect_then_give(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    a, b = rng.randint(3, 40), rng.randint(3, 40)
    first, total = calc(a, "+", b)
    given = rng.randint(1, total - 2)
    second, left = calc(total, "-", given)
    question = (
        f"{p.name} finds {a} {p.item}, then {b} more, and gives {given} to {p.other}. "
        f"How many does {p.pronoun} have left?"
    )
    return question, [f"{p.Pronoun} finds {first}.", f"{p.Pronoun} has {second} left."], left


def change(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    _, goods = rng.choice(GOODS)
    count, price = rng.randint(2, 6), rng.randint(2, 15)
    first, cost = calc(count, "*", price)
    bill = next(bill for bill in (20, 50, 100) if bill - cost >= 2)
    second, left = calc(bill, "-", cost)
    question = f"{p.name} buys {count} {goods} at ${price} each with a ${bill} bill. How many dollars is the change?"
    return question, [f"They cost {first}.", f"The change is {second}."], left


def daily_then_more(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    verb, _, unit = rng.choice(ACTIVITIES)
    per_day, days, extra = rng.randint(2, 15), rng.randint(2, 7), rng.randint(2, 20)
    first, daily_total = calc(per_day, "*", days)
    second, total = calc(daily_total, "+", extra)
    question = f"{p.name} {verb} {per_day} {unit} a day for {days} days, then {extra} more. How many {unit} in all?"
    return question, [f"{first} {unit} in {days} days.", f"{second} {unit} in all."], total


def buy_then_share(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    friends, each = rng.randint(2, 6), rng.randint(2, 10)
    have = rng.randint(2, friends * each - 2)
    bought = friends * each - have
    first, total = calc(have, "+", bought)
    second, _ = calc(total, "/", friends)
    question = (
        f"{p.name} has {have} {p.item}, buys {bought} more and shares them equally among {friends} friends. "
        f"How many does each friend get?"
    )
    return question, [f"{p.Pronoun} has {first}.", f"Each gets {second}."], each


def more_than(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    a, extra = rng.randint(2, 30), rng.randint(2, 20)
    first, other_has = calc(a, "+", extra)
    second, together = calc(a, "+", other_has)
    question = f"{p.name} has {a} {p.item}. {p.other} has {extra} more than {p.name}. How many do they have together?"
    return question, [f"{p.other} has {first}.", f"Together they have {second}."], together


def boxes_shared(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    boxes, per_box = rng.randint(2, 8), rng.randint(4, 12)
    first, total = calc(boxes, "*", per_box)
    friends = rng.randint(2, min(6, total // 3))
    # Keep a number that leaves a multiple of `friends` (exact sharing) and at least 2 for each friend.
    kept_choices = [kept for kept in range(1, total - 2 * friends + 1) if (total - kept) % friends == 0]
    kept = rng.choice(kept_choices[:10])
    second, rest = calc(total, "-", kept)
    third, each = calc(rest, "/", friends)
    question = (
        f"{p.name} buys {boxes} {p.container} of {p.item} with {per_box} in each. {p.Pronoun} keeps {kept} "
        f"and shares the rest equally among {friends} friends. How many does each friend get?"
    )
    lines = [f"{p.Pronoun} buys {first} {p.item}.", f"{p.Pronoun} shares {second}.", f"Each friend gets {third}."]
    return question, lines, each


def wages(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    rate, hours, days = rng.randint(5, 20), rng.randint(2, 8), rng.randint(2, 6)
    first, per_day = calc(rate, "*", hours)
    second, earned = calc(per_day, "*", days)
    spent = rng.randint(1, earned - 2)
    third, left = calc(earned, "-", spent)
    question = (
        f"{p.name} earns ${rate} an hour and works {hours} hours a day for {days} days. "
        f"{p.Pronoun} spends ${spent}. How many dollars does {p.pronoun} have left?"
    )
    lines = [f"Each day: {first} dollars.", f"In {days} days: {second} dollars.", f"Left: {third} dollars."]
    return question, lines, left


def bakery(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    food = rng.choice(FOODS)
    trays, per_tray = rng.randint(2, 8), rng.randint(4, 12)
    first, baked = calc(trays, "*", per_tray)
    morning = rng.randint(1, baked - 3)
    afternoon = rng.randint(1, baked - morning - 2)
    second, sold = calc(morning, "+", afternoon)
    third, left = calc(baked, "-", sold)
    question = (
        f"{p.name} bakes {trays} trays of {food} with {per_tray} on each tray. {p.Pronoun} sells {morning} "
        f"in the morning and {afternoon} in the afternoon. How many {food} are left?"
    )
    lines = [f"{p.Pronoun} bakes {first} {food}.", f"{p.Pronoun} sells {second}.", f"{third} {food} are left."]
    return question, lines, left


def shopping(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    (_, first_goods), (_, second_goods) = rng.sample(GOODS, 2)
    first_count, first_price = rng.randint(2, 6), rng.randint(2, 15)
    second_count, second_price = rng.randint(2, 6), rng.randint(2, 15)
    first, first_cost = calc(first_count, "*", first_price)
    second, second_cost = calc(second_count, "*", second_price)
    third, total = calc(first_cost, "+", second_cost)
    question = (
        f"{p.name} buys {first_count} {first_goods} at ${first_price} each and {second_count} {second_goods} "
        f"at ${second_price} each. How many dollars does {p.pronoun} spend?"
    )
    lines = [f"The {first_goods} cost {first}.", f"The {second_goods} cost {second}.", f"In all: {third} dollars."]
    return question, lines, total


def harvest(rng: random.Random, p: Problem) -> tuple[str, list[str], int]:
    plant, produce = rng.choice(CROPS)
    rows, per_row, per_plant = rng.randint(2, 6), rng.randint(2, 8), rng.randint(2, 10)
    first, plants = calc(rows, "*", per_row)
    second, harvested = calc(plants, "*", per_plant)
    # The harvest is a product of numbers from 2 to 10, so one of them is a bag size that divides it.
    bag_size = rng.choice([size for size in range(2, 13) if harvested % size == 0 and size < harvested])
    third, bags = calc(harvested, "/", bag_size)
    question = (
        f"{p.name} plants {rows} rows of {plant} plants with {per_row} in each row. Each plant gives {per_plant} "
        f"{produce}. {p.Pronoun} packs them in bags of {bag_size}. How many bags does {p.pronoun} fill?"
    )
    lines = [f"{first} plants.", f"{second} {produce}.", f"{third} bags."]
    return question, lines, bags


Template = Callable[[random.Random, Problem], tuple[str, list[str], int]]
TEMPLATES: dict[int, tuple[Template, ...]] = {
    1: (gain, give_away, groups, share, two_days, spend),
    2: (packs_then_give, collect_then_give, change, daily_then_more, buy_then_share, more_than),
    3: (boxes_shared, wages, bakery, shopping, harvest),
}


def split_of(question: str, seed: int) -> str:
    """The split a question belongs to for this seed: a salted hash of its text, so splits never share one."""
    digest = hashlib.blake2b(f"{seed}:{question}".encode(), digest_size=8).digest()
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
        split = split_of(question, seed)
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
        split: "train", "validation" or "test"; questions never repeat across splits with the same seed.
        num_examples: number of distinct problems.
        difficulty: a level in 1..3 (= number of calculation steps), or several to mix uniformly.
        seed: picks the problems and the assignment of questions to splits.
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


def extract_final_answer(text: str) -> str | None:
    """The number after `#### ` (commas removed), or None when the text has no final answer line."""
    match = FINAL_ANSWER.search(text)
    return match.group(1).replace(",", "") if match else None


def _with_wrong_step(answer_text: str, calculations: list[re.Match], target: int, wrong: int) -> str | None:
    """The solution with calculation `target` giving `wrong`, carried into the later calculations that use it.

    None when that makes a later step fractional or negative, or leaves the final answer unchanged.
    """
    first = calculations[target]
    annotated = "<<" in first[0]
    pieces = [answer_text[: first.start()], _render(first["left"], first["op"], first["right"], wrong, annotated)]
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
        pieces += [answer_text[end : match.start()], _render(left, match["op"], right, final, annotated)]
        end = match.end()
    if str(final) == calculations[-1]["result"]:
        return None
    return FINAL_ANSWER.sub(f"#### {final}", "".join(pieces) + answer_text[end:], count=1)


def corrupt_solution(answer_text: str, rng: random.Random) -> str:
    """A plausible but wrong solution: one calculation gets a wrong result, carried through the later steps.

    The final `#### N` always differs from the original one, so (original, corrupted) makes a (chosen, rejected)
    pair for reward modelling. Text whose last calculation is not the final answer only gets a wrong final answer.
    """
    gold = extract_final_answer(answer_text)
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
    return FINAL_ANSWER.sub(f"#### {int(float(gold)) + rng.randint(1, 9)}", answer_text)
