"""The word-problem templates of the arithmetic task: names, things, and one function per kind of problem.

A template draws its numbers from the task's random stream and returns (question, solution lines, answer); a
level-d template writes exactly d calculations, each in GSM8K's form `4*6 = <<4*6=24>>24`. `toolkit.tasks.arithmetic`
turns them into problems, splits and prompts.
"""

import operator
import random
import re
from collections.abc import Callable

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


def render_calculation(left: str, op: str, right: str, result: int, annotated: bool) -> str:
    """`4*6 = <<4*6=24>>24`, or `4*6 = 24` without the calculator annotation."""
    expression = f"{left}{op}{right}"
    return f"{expression} = <<{expression}={result}>>{result}" if annotated else f"{expression} = {result}"


def calc(left: int, op: str, right: int) -> tuple[str, int]:
    """GSM8K's calculation text `left op right = <<left op right=result>>result`, and the result."""
    if op == "/" and left % right != 0:
        raise ValueError(f"{left}/{right} is not an integer")
    result = OPERATIONS[op](left, right)
    return render_calculation(str(left), op, str(right), result, annotated=True), result


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
