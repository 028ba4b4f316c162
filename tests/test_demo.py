"""`toolkit demo --quick`: every stage runs on CPU (under 2 minutes on one thread), shows its gain, and a rerun resumes
instead of starting over."""

import json
import math

import pytest

from toolkit.pipelines.demo import EVALUATED, FULL, QUICK, STAGE_FILE, DemoArguments, demo_sizes, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("demo")
    return output_dir, run_demo(DemoArguments(output_dir=str(output_dir), quick=True))


def eval_losses(folder):
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [row["eval_loss"] for row in history if "eval_loss" in row]


def test_pretraining_beats_a_uniform_guess(demo):
    output_dir, stages = demo
    vocabulary = json.loads((output_dir / "pretrain" / "config.json").read_text())["vocab_size"]
    assert stages["pretrain"]["metrics"]["eval_perplexity"] < vocabulary / 4


@pytest.mark.parametrize("method", ["sft-full", "sft-lora", "sft-prompt"])
def test_each_fine_tuning_method_lowers_its_validation_loss(demo, method):
    output_dir, _ = demo
    losses = eval_losses(output_dir / method)
    assert len(losses) >= 3
    assert losses[-1] < losses[0]


def test_fine_tuning_gains_over_the_pretrained_model(demo):
    _, stages = demo
    scores = stages["evaluate"]["metrics"]
    for method in ("sft-full", "sft-lora", "sft-prompt"):
        assert scores[f"{method}/perplexity"]["perplexity"] < scores["pretrained/perplexity"]["perplexity"] / 2
    for method in ("sft-full", "sft-lora"):  # a 2-layer GPT computes after 600 steps: SFT answers, not just formats
        assert scores[f"{method}/gsm8k"]["strict_match"] > scores["pretrained/gsm8k"]["strict_match"] + 0.2
        assert scores[f"{method}/bleu"]["bleu"] > scores["pretrained/bleu"]["bleu"] + 20


def test_reward_model_beats_chance_and_ppo_raises_its_reward(demo):
    output_dir, stages = demo
    reward = stages["reward"]["metrics"]
    assert reward["heldout_num_pairs"] >= 400
    assert reward["heldout_accuracy_ci_low"] > 0.55  # correct vs corrupted solutions; chance is 0.5
    ppo = stages["ppo"]["metrics"]
    assert ppo["first"]["objective/kl"] == 0.0  # the first rollout comes from the reference weights
    assert ppo["steps"] == QUICK.ppo_steps
    assert ppo["late_reward"] > ppo["early_reward"]  # mean exact-match reward of the sampled responses rises
    assert ppo["max_kl"] < 5.0
    scores = stages["evaluate"]["metrics"]
    assert scores["ppo/gsm8k"]["strict_match"] >= scores["sft-lora/gsm8k"]["strict_match"] - 0.03
    adapter = json.loads((output_dir / "ppo" / "policy" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"].endswith("sft-merged")


def test_report_shows_every_stage_with_its_gain(demo):
    output_dir, stages = demo
    report = (output_dir / "report.md").read_text()
    for name in EVALUATED:
        assert f"| {name} |" in report
    assert report.count("(+") + report.count("(-") >= 4 * (len(EVALUATED) - 1)
    assert (output_dir / "evaluate" / "results.png").stat().st_size > 10_000
    scores = stages["evaluate"]["metrics"]
    assert all(math.isfinite(scores[f"{name}/perplexity"]["perplexity"]) for name in EVALUATED)


def test_rerun_skips_finished_stages_and_redoes_only_the_interrupted_one(demo, capsys):
    output_dir, stages = demo
    (output_dir / "evaluate" / STAGE_FILE).unlink()
    capsys.readouterr()
    rerun = run_demo(DemoArguments(output_dir=str(output_dir), quick=True))
    out = capsys.readouterr().out
    for name in ("pretrain", "sft-full", "sft-lora", "sft-prompt", "reward", "ppo"):
        assert f"[demo] {name}: done already, skipping" in out
        assert rerun[name] == stages[name]
    assert "[demo] evaluate: starting" in out
    assert rerun["evaluate"]["metrics"] == stages["evaluate"]["metrics"]  # same models, same greedy outputs


def test_command_line_sets_difficulty_and_pretraining_size():
    assert demo_sizes(DemoArguments(quick=True)) == QUICK
    sizes = demo_sizes(DemoArguments(difficulty=[1], pretrain_problems=40000, pretrain_steps=2400))
    assert (sizes.difficulty, sizes.pretrain_problems, sizes.pretrain_steps) == ((1,), 40000, 2400)
    assert (sizes.sft_steps, sizes.reward_steps, sizes.ppo_steps) == (
        FULL.sft_steps,
        FULL.reward_steps,
        FULL.ppo_steps,
    )
    with pytest.raises(ValueError, match="--difficulty takes levels from"):
        demo_sizes(DemoArguments(difficulty=[4]))


@pytest.mark.slow
def test_full_demo_shows_every_stage_gain(tmp_path):
    """The default plan (about 10 minutes with the tests' single thread): the pretrained model computes, and each
    later stage gains."""
    stages = run_demo(DemoArguments(output_dir=str(tmp_path)))
    scores = stages["evaluate"]["metrics"]
    strict = {name: scores[f"{name}/gsm8k"]["strict_match"] for name in EVALUATED}
    for method in ("sft-full", "sft-lora"):
        assert strict[method] > strict["pretrained"] + 0.3  # the pretrained model has never seen Question:/Answer:
        assert scores[f"{method}/bleu"]["bleu"] > scores["pretrained/bleu"]["bleu"]
    assert strict["sft-lora"] > 0.5  # it computes, not just formats
    reward = stages["reward"]["metrics"]
    assert reward["heldout_accuracy_ci_low"] > 0.6  # well above chance on correct vs corrupted solutions
    ppo = stages["ppo"]["metrics"]
    assert ppo["late_reward"] > ppo["early_reward"]  # mean exact-match reward of the sampled responses rises
    assert ppo["max_kl"] < 5.0
    assert strict["ppo"] >= strict["sft-lora"] - 0.02  # greedy accuracy: kept (its gain is within noise here)
