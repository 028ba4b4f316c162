"""The arithmetic task is defined once: every stage that judges an answer agrees with `verify`."""

import random

import datasets
import pytest

from toolkit.data import load_raw
from toolkit.evaluation import gsm8k_exact_match, score_gsm8k
from toolkit.rlhf.preferences import arithmetic_pairs_from_samples
from toolkit.rlhf.rewards import REWARD_FUNCTIONS
from toolkit.tasks.arithmetic import (
    corrupt_solution,
    format_prompt,
    verify,
    verify_flexible,
)

# How a model might write the final line for gold 7, and lm-evaluation-harness's strict-match verdict on it.
FINAL_LINES = {"####7": False, "#### 7": True, "#### 7.": True, "#### $7": False}
PROBLEM = {"question": "Mia has 3 apples and gets 4 more. How many apples does Mia have now?", "final_answer": "7"}


def solution(final_line: str) -> str:
    return f"Mia has 3+4 = <<3+4=7>>7 apples now.\n{final_line}"


@pytest.mark.parametrize("final_line, correct", FINAL_LINES.items())
def test_one_verdict_per_answer_in_every_stage(final_line, correct):
    output = f" {solution(final_line)}"
    assert verify(output, "7") is correct
    assert verify_flexible(output, "7")  # the last number is 7 in every form

    # SFT data: what the `arithmetic` source teaches is exactly what verify accepts, in the same prompt format.
    row = load_raw("arithmetic", synthetic_sizes=(4, 2))["train"][0]
    assert row["prompt"] == format_prompt(row["question"]) and verify(row["completion"], row["final_answer"])
    taught = row["completion"].rsplit("\n", 1)[0] + "\n" + final_line.replace("7", row["final_answer"])
    assert verify(taught, row["final_answer"]) is correct

    # Reward pairs: a policy sample is rejected exactly when verify calls it wrong ...
    problems = datasets.Dataset.from_list([{**PROBLEM, "answer": solution("#### 7")}])
    pairs = arithmetic_pairs_from_samples(problems, [output, " #### 8"])
    assert (output in pairs["rejected"]) is (not correct)
    assert (output in pairs["chosen"]) is correct
    # ... and a corrupted pair can be built from a solution exactly when its final line is one verify reads.
    if correct:
        assert not verify(corrupt_solution(solution(final_line), random.Random(0)), "7")
    else:
        with pytest.raises(ValueError, match="no final answer line"):
            corrupt_solution(solution(final_line), random.Random(0))

    # PPO's exact-match reward, as the PPO recipe looks it up.
    assert REWARD_FUNCTIONS["exact_match"]([format_prompt(PROBLEM["question"])], [output], ["7"]) == [float(correct)]

    # The GSM8K-style metric and the evaluation records.
    assert gsm8k_exact_match([output], ["7"])["strict_match"] == float(correct)
    record = score_gsm8k([{"question": PROBLEM["question"], "answer": solution("#### 7")}], [output]).records[0]
    assert record["strict_correct"] is correct and record["flexible_correct"]
