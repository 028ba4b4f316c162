"""The arithmetic task is defined once: every stage that judges an answer agrees with `verify`, and no training seed
moves a test question into any recipe's training data."""

import random

import datasets
import pytest
import yaml

from recipes_loader import REPO, load_recipe
from toolkit.data import load_raw
from toolkit.evaluation import TASKS, gsm8k_exact_match, score_gsm8k
from toolkit.pipelines.demo import DemoArguments, load_plan
from toolkit.pipelines.eval import EvalArguments
from toolkit.pipelines.reward import PreferenceDataArguments, load_preference_splits
from toolkit.rlhf.preferences import pairs_from_samples
from toolkit.rlhf.prompts import PromptDataArguments, load_prompts
from toolkit.rlhf.reward_functions import REWARD_FUNCTIONS
from toolkit.tasks.arithmetic import (
    arithmetic_preference_pairs,
    corrupt_solution,
    format_prompt,
    make_arithmetic_dataset,
    verify,
    verify_flexible,
)
from toolkit.training import load_training_splits

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
    row = load_raw("arithmetic", synthetic_sizes={"train": 4})["train"][0]
    assert row["prompt"] == format_prompt(row["question"]) and verify(row["completion"], row["final_answer"])
    taught = row["completion"].rsplit("\n", 1)[0] + "\n" + final_line.replace("7", row["final_answer"])
    assert verify(taught, row["final_answer"]) is correct

    # Reward pairs: a policy sample is rejected exactly when verify calls it wrong ...
    judge = lambda index, text: verify(text, "7")  # noqa: E731 (as the reward recipe judges the policy's samples)
    pairs = pairs_from_samples(["Q"], [output, " #### 8"], judge, references=[f" {solution('#### 7')}"])
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


def question_of(prompt: str) -> str:
    return prompt.removeprefix("Question: ").removesuffix("\nAnswer:")


def training_questions(job: str, argv: list[str]) -> set[str]:
    """The questions a recipe trains on, loaded exactly as its pipeline loads them."""
    parsed = load_recipe(job).build_parser().parse_args_and_config(argv)
    if job in ("pretrain", "sft"):
        splits = load_training_splits(parsed[1])
        return {question for split in splits.values() for question in split["question"]}
    if job == "reward":
        splits = load_preference_splits(parsed[1], parsed[-1].seed)
        return {question_of(prompt) for split in splits.values() for prompt in split["prompt"]}
    return {question_of(prompt) for prompt in load_prompts(parsed[1])["prompt"]}


TEST_QUESTIONS = {
    example["question"] for example in TASKS["gsm8k"](EvalArguments(models=["m"], synthetic_size=400)).load().golds
}


@pytest.mark.parametrize("job", ["pretrain", "sft", "reward", "ppo"])
def test_no_seed_moves_a_test_question_into_training(job):
    config = ["--config", str(REPO / f"recipes/configs/{job}/tiny_cpu.yaml")]
    by_seed = {seed: training_questions(job, [*config, "--seed", str(seed)]) for seed in (0, 1, 7)}
    assert by_seed[0] and not by_seed[0] & TEST_QUESTIONS
    assert by_seed[1] == by_seed[0] == by_seed[7]  # the data does not depend on the training seed at all


def test_no_demo_seed_moves_a_test_question_into_training(tmp_path):
    for seed in (0, 1):
        stages, _ = load_plan(DemoArguments(quick=True, seed=seed, output_dir=str(tmp_path)))
        for stage in stages:
            if stage.job in ("pretrain", "sft", "reward", "ppo"):
                path = tmp_path / f"{stage.name}.yaml"
                path.write_text(yaml.safe_dump(stage.config))
                assert not training_questions(stage.job, ["--config", str(path)]) & TEST_QUESTIONS, stage.name


def test_every_job_reads_the_built_in_task_as_one_data_source():
    """`arithmetic` is one data source (`load_raw`) with a column for each use: every job's reader, fed it as it would
    be fed a file, sees exactly the task's own problems, pairs and answers."""
    problems = make_arithmetic_dataset("train", 30, (1, 2))
    pairs = arithmetic_preference_pairs(30, "train", (1, 2))
    splits = load_preference_splits(PreferenceDataArguments(num_pairs=30, synthetic_difficulty=[1, 2]), seed=0)
    read = datasets.concatenate_datasets([splits["train"], splits["validation"]])
    assert sorted(zip(read["prompt"], read["chosen"], read["rejected"])) == sorted(
        zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])
    )
    prompts = load_prompts(PromptDataArguments(num_prompts=30))  # PPO, GRPO and RLOO, with the reward's gold
    assert prompts["prompt"] == pairs["prompt"] and prompts["final_answer"] == problems["final_answer"]

    test = make_arithmetic_dataset("test", 25, (1, 2))
    args = EvalArguments(models=["m"], synthetic_size=25)
    gsm8k = TASKS["gsm8k"](args).load()
    assert gsm8k.golds == [{"question": q, "answer": a} for q, a in zip(test["question"], test["answer"])]
    bleu = TASKS["bleu"](args).load()
    assert bleu.items == [format_prompt(q) for q in test["question"]] and bleu.golds == test["answer"]
    texts = [format_prompt(q, a) for q, a in zip(test["question"], test["answer"])]
    assert TASKS["perplexity"](args).load().items == texts
