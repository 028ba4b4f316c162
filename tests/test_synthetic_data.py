import ast
import operator
import random
import re
import statistics
from fractions import Fraction

import pytest

from toolkit.loading import load_gpt2_tokenizer
from toolkit.tasks.arithmetic import (
    arithmetic_splits,
    corrupt_solution,
    gold_answer,
    make_arithmetic_dataset,
    split_of,
)

ANNOTATION = re.compile(r"<<([^=>]+)=([^>]+)>>")
BINARY_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str) -> Fraction:
    """Exact arithmetic on an annotation's expression, independent of the generator's code."""

    def visit(node):
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPERATORS:
            return BINARY_OPERATORS[type(node.op)](visit(node.left), visit(node.right))
        raise ValueError(f"unexpected expression {expression!r}")

    return visit(ast.parse(expression, mode="eval"))


def annotations(answer: str) -> list[tuple[str, str]]:
    return ANNOTATION.findall(answer)


def test_same_arguments_give_identical_data():
    first = make_arithmetic_dataset("train", 300, difficulty=(1, 2, 3), seed=7)
    second = make_arithmetic_dataset("train", 300, difficulty=(1, 2, 3), seed=7)
    assert first.to_dict() == second.to_dict()
    assert first.column_names == ["question", "answer", "final_answer", "difficulty"]
    other_seed = make_arithmetic_dataset("train", 300, difficulty=(1, 2, 3), seed=8)
    assert other_seed["question"] != first["question"]


def test_splits_never_share_a_question():
    splits = arithmetic_splits(train_size=3000, validation_size=400, test_size=400, seed=0)
    questions = {name: set(split["question"]) for name, split in splits.items()}
    assert {name: len(qs) for name, qs in questions.items()} == {"train": 3000, "validation": 400, "test": 400}
    assert not questions["train"] & questions["validation"]
    assert not questions["train"] & questions["test"]
    assert not questions["validation"] & questions["test"]
    # One split on its own is the same as in arithmetic_splits, so separate calls never overlap either.
    assert make_arithmetic_dataset("test", 400, seed=0).to_dict() == splits["test"].to_dict()
    # Even when the splits are asked for at different difficulties.
    easy_test = make_arithmetic_dataset("test", 400, difficulty=1, seed=0)
    assert not set(easy_test["question"]) & questions["train"]


def test_a_questions_split_does_not_depend_on_the_seed():
    # The seed picks which problems are drawn, never which split a question lands in: training problems drawn
    # with another seed still hold no test question (40000 such problems held 24 of these 400 when it did).
    test = set(make_arithmetic_dataset("test", 400, difficulty=1, seed=0)["question"])
    train = make_arithmetic_dataset("train", 40_000, difficulty=1, seed=1)["question"]
    assert not test & set(train)
    assert {split_of(question) for question in train} == {"train"}
    assert {split_of(question) for question in test} == {"test"}


def test_every_solution_is_correct():
    dataset = make_arithmetic_dataset("train", 1500, seed=3)
    for row in dataset:
        steps = annotations(row["answer"])
        known_numbers = set(re.findall(r"\d+", row["question"]))
        for expression, result in steps:
            value = evaluate(expression)
            assert value == int(result), (expression, result)
            assert value.denominator == 1 and value >= 0, expression
            # Every operand comes from the question or from an earlier step.
            assert set(re.findall(r"\d+", expression)) <= known_numbers, (row["question"], row["answer"])
            known_numbers.add(result)
            assert f"<<{expression}={result}>>{result}" in row["answer"]
        assert row["final_answer"] == steps[-1][1]
        assert row["answer"].endswith(f"\n#### {row['final_answer']}")
        assert gold_answer(row["answer"]) == row["final_answer"]


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_difficulty_is_the_number_of_steps(difficulty):
    dataset = make_arithmetic_dataset("validation", 200, difficulty=difficulty, seed=1)
    assert set(dataset["difficulty"]) == {difficulty}
    for answer in dataset["answer"]:
        assert len(annotations(answer)) == difficulty
        assert len(answer.splitlines()) == difficulty + 1
    if difficulty == 3:
        operations = {op for answer in dataset["answer"] for expression, _ in annotations(answer) for op in "*/"}
        assert operations & {"*", "/"}


def test_mixed_difficulties_and_no_annotations():
    mixed = make_arithmetic_dataset("train", 600, seed=2)
    assert set(mixed["difficulty"]) == {1, 2, 3}
    plain = make_arithmetic_dataset("train", 600, seed=2, calculator_annotations=False)
    assert plain["question"] == mixed["question"] and plain["final_answer"] == mixed["final_answer"]
    assert not any("<<" in answer for answer in plain["answer"])
    assert plain["answer"][0] == ANNOTATION.sub("", mixed["answer"][0])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="difficulty"):
        make_arithmetic_dataset(difficulty=4)
    with pytest.raises(ValueError, match="split"):
        make_arithmetic_dataset("dev")


def test_ten_thousand_distinct_problems():
    dataset = make_arithmetic_dataset("train", 10_000, seed=0)
    assert len(set(dataset["question"])) == 10_000


def test_easy_problems_are_short_for_gpt2(shared_data):
    tokenizer = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    for difficulty, limit in ((1, 50), (2, 60)):
        dataset = make_arithmetic_dataset("train", 300, difficulty=difficulty, seed=0)
        lengths = [len(tokenizer(f"{q}\n{a}")["input_ids"]) for q, a in zip(dataset["question"], dataset["answer"])]
        assert statistics.median(lengths) < limit, (difficulty, statistics.median(lengths))


@pytest.mark.parametrize("calculator_annotations", [True, False])
def test_corrupt_solution_is_wrong_but_well_formed(calculator_annotations):
    dataset = make_arithmetic_dataset("train", 600, seed=4, calculator_annotations=calculator_annotations)
    rng = random.Random(0)
    for row in dataset:
        corrupted = corrupt_solution(row["answer"], rng)
        wrong_final = gold_answer(corrupted)
        assert wrong_final is not None and wrong_final != row["final_answer"]
        assert int(wrong_final) >= 0
        assert len(corrupted.splitlines()) == len(row["answer"].splitlines())
        if calculator_annotations:
            # Exactly one step has a wrong result; the later steps carry it through consistently.
            steps = annotations(corrupted)
            wrong_steps = [expression for expression, result in steps if evaluate(expression) != int(result)]
            assert len(wrong_steps) == 1, corrupted
            assert steps[-1][1] == wrong_final
    again = [corrupt_solution(answer, random.Random(0)) for answer in dataset["answer"][:20]]
    assert again == [corrupt_solution(answer, random.Random(0)) for answer in dataset["answer"][:20]]


def test_corrupt_solution_of_text_without_calculations():
    corrupted = corrupt_solution("She has twelve.\n#### 12", random.Random(0))
    assert corrupted.startswith("She has twelve.\n#### ")
    assert gold_answer(corrupted) != "12"
    with pytest.raises(ValueError, match="####"):
        corrupt_solution("no final answer here", random.Random(0))


def test_gold_answer_reads_the_final_line_as_strict_match_does():
    assert gold_answer("He has 3+4 = <<3+4=7>>7.\n#### 7") == "7"
    assert gold_answer("#### 1,234") == "1234"
    assert gold_answer("so the answer is\n#### -5") == "-5"
    assert gold_answer("#### 2.5") == "2.5"
    assert gold_answer("#### 7.") == "7"
    assert gold_answer("####7") is None  # strict-match needs "#### " with the space
    assert gold_answer("The answer is 42.") is None
