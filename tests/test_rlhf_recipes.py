"""recipes/reward.py and recipes/ppo.py end to end on tiny configs, chained after pretrain and SFT."""

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from summaries import checked_summary

from recipes_loader import REPO, load_recipe
from toolkit.loading import load_causal_lm
from toolkit.rlhf.reward_functions import exact_match_reward
from toolkit.runs import read_run, resolve_checkpoint

CONFIGS = REPO / "recipes/configs"
pretrain, sft, reward, ppo = (load_recipe(name) for name in ("pretrain", "sft", "reward", "ppo"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The tiny chain: pretrain -> LoRA SFT -> reward model."""
    root = tmp_path_factory.mktemp("pipeline")
    pretrain.main(["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(root / "base")])
    sft.main(
        [
            *("--config", str(CONFIGS / "sft/tiny_cpu.yaml")),
            *("--model_name_or_path", str(root / "base"), "--output_dir", str(root / "sft")),
        ]
    )
    reward_metrics = reward.main(
        [
            *("--config", str(CONFIGS / "reward/tiny_cpu.yaml")),
            *("--model_name_or_path", str(root / "base"), "--output_dir", str(root / "reward")),
        ]
    )
    return root, reward_metrics


def test_reward_recipe_reports_held_out_pairwise_metrics(pipeline):
    root, metrics = pipeline
    assert metrics["heldout_num_pairs"] == 40
    assert 0 <= metrics["heldout_accuracy"] <= 1
    saved = checked_summary(root / "reward", "reward")
    assert saved["heldout_margin"] == metrics["heldout_margin"] == saved["headline"]["heldout_margin"]
    assert (root / "reward" / "training_curves.png").exists()


def test_lora_reward_recipe_trains_only_the_adapter_and_the_score_head(pipeline):
    root, _ = pipeline
    argv = ["--config", str(CONFIGS / "reward/tiny_cpu.yaml"), "--model_name_or_path", str(root / "base")]
    metrics = reward.main([*argv, "--output_dir", str(root / "reward-lora"), "--method", "lora"])
    assert metrics["heldout_num_pairs"] == 40
    saved = load_file(root / "reward-lora" / "adapter_model.safetensors")
    assert any("lora_B" in name and saved[name].abs().sum() > 0 for name in saved)
    assert any(name.endswith("score.weight") for name in saved)  # the new head is saved in full beside the adapter
    assert all("lora_" in name or "score" in name for name in saved)


def run_ppo(root, name, *extra) -> list[dict]:
    """The run's metrics history, one line per step of its metrics.jsonl."""
    argv = ["--config", str(CONFIGS / "ppo/tiny_cpu.yaml"), "--model_name_or_path", str(root / "sft")]
    ppo.main([*argv, "--output_dir", str(root / name), *extra])
    return [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]


def test_ppo_with_exact_match_reward_trains_only_the_adapter(pipeline):
    root, _ = pipeline
    history = run_ppo(root, "ppo-exact")
    assert len(history) == 4
    assert history[0]["objective/kl"] == 0.0  # the first rollout comes from the reference weights
    adapter = load_file(root / "ppo-exact" / "policy" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(adapter[name].abs().sum() > 0 for name in adapter if "lora_B" in name)
    assert (root / "ppo-exact" / "training_curves.png").exists()
    # The adapter names the merged SFT model as its base, so loading it gives the trained policy.
    config = json.loads((root / "ppo-exact" / "policy" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(root / "ppo-exact" / "sft-merged")
    sft_merged = load_causal_lm(str(root / "sft")).merge_and_unload().state_dict()
    saved_base = load_file(root / "ppo-exact" / "sft-merged" / "model.safetensors")
    assert all(torch.equal(saved_base[name], sft_merged[name]) for name in saved_base)
    summary = checked_summary(root / "ppo-exact", "ppo")
    assert summary["steps"] == 4 and summary["units"] == summary["last"]["episodes"] > 0
    assert summary["curves"]["reward"] == [[row["episodes"], row["objective/scores"]] for row in history]
    # The whole run's rate: its episodes over the summed step times, between the slowest and the fastest step's.
    rates = [row["episodes_per_second"] for row in history]
    assert len(rates) == 4 and min(rates) <= summary["units_per_second"] <= max(rates)


def test_full_ppo_from_a_lora_sft_model_trains_every_weight(pipeline):
    """The SFT adapter is merged first; the merged model must come back trainable, not frozen as PEFT loads it."""
    root, _ = pipeline
    history = run_ppo(root, "ppo-full", "--method", "full", "--max_steps", "2")
    assert history[0]["objective/kl"] == 0.0
    sft_merged = load_causal_lm(str(root / "sft")).merge_and_unload().state_dict()
    trained = load_causal_lm(str(root / "ppo-full" / "policy")).state_dict()
    changed = [name for name in sft_merged if not torch.equal(sft_merged[name], trained[name])]
    assert changed == list(sft_merged)


def test_ppo_resumes_from_the_latest_checkpoint(pipeline):
    root, _ = pipeline
    run_ppo(root, "ppo-resume", "--max_steps", "2", "--plot", "false")
    history = run_ppo(root, "ppo-resume", "--resume_from_checkpoint", "latest", "--plot", "false")
    assert [metrics["step"] for metrics in history] == [1, 2, 3, 4]
    assert not (root / "ppo-resume" / "training_curves.png").exists()


def test_ppo_with_a_reward_model(pipeline):
    root, _ = pipeline
    history = run_ppo(root, "ppo-rm", "--reward", "model", "--reward_model_name_or_path", str(root / "reward"))
    assert history[0]["objective/kl"] == 0.0
    assert all(torch.isfinite(torch.tensor(m["objective/scores"])) for m in history)


def test_ppo_rejects_a_reward_model_with_another_vocabulary(pipeline, tmp_path):
    root, _ = pipeline
    other = tmp_path / "other-base"
    data = tmp_path / "digits.txt"
    data.write_text("0123456789 " * 400)
    pretrain.main(
        [
            *("--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(other)),
            *("--dataset", str(data), "--max_steps", "1", "--eval_steps", "1"),
        ]
    )
    reward.main(
        [
            *("--config", str(CONFIGS / "reward/tiny_cpu.yaml"), "--model_name_or_path", str(other)),
            *("--output_dir", str(tmp_path / "other-reward"), "--max_steps", "1"),
        ]
    )
    with pytest.raises(ValueError, match="tokenizer"):
        run_ppo(
            root, "ppo-mismatch", "--reward", "model", "--reward_model_name_or_path", str(tmp_path / "other-reward")
        )


def test_ppo_rejects_responses_longer_than_the_context(pipeline):
    root, _ = pipeline
    with pytest.raises(ValueError, match="context"):
        run_ppo(root, "ppo-long", "--max_new_tokens", "300")


@pytest.mark.parametrize(
    ("chosen", "rejected", "message"),
    [("", "a reply", "empty"), ("same reply", "same reply", "identical")],
)
def test_reward_recipe_rejects_bad_preference_rows(tmp_path, chosen, rejected, message):
    path = tmp_path / "pairs.jsonl.gz"
    rows = [{"chosen": "good answer", "rejected": "bad answer"}, {"chosen": chosen, "rejected": rejected}]
    with gzip.open(path, "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    with pytest.raises(ValueError, match=rf"{path} line 2.*{message}"):
        reward.main(
            ["--config", str(CONFIGS / "reward/tiny_cpu.yaml"), "--dataset", str(path), "--output_dir", str(tmp_path)]
        )


def test_exact_match_reward_scores_like_gsm8k_strict_match():
    responses = [" 6*7 = 42\n#### 42", " #### 1,000.", " the answer is 42", " #### 41"]
    assert exact_match_reward([""] * 4, responses, final_answer=["42", "1000", "42", "42"]) == [1.0, 1.0, 0.0, 0.0]
    assert exact_match_reward([""], [" the answer is 42"], final_answer=["42"], strict=False) == [1.0]


def test_ppo_reports_to_tensorboard_like_any_trainer(pipeline):
    root, _ = pipeline
    history = run_ppo(root, "ppo-tensorboard", "--report_to", "tensorboard", "--max_steps", "2")
    events = list((root / "ppo-tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(events[0].parent)).Reload()
    scores = [event.value for event in logged.Scalars("train/objective/scores")]
    assert scores == pytest.approx([metrics["objective/scores"] for metrics in history])


def test_ppo_and_sft_configs_share_the_training_arguments_vocabulary():
    """A PPO YAML spells the settings it shares with an SFT YAML as TrainingArguments does, and they mean the same."""
    ppo_config = ppo.build_parser().parse_args_and_config(["--config", str(CONFIGS / "ppo/tiny_cpu.yaml")])[-1]
    sft_config = sft.build_parser().parse_args_and_config(["--config", str(CONFIGS / "sft/tiny_cpu.yaml")])[-1]
    assert isinstance(ppo_config, type(sft_config).__mro__[-2])  # both are TrainingArguments
    shared = ("output_dir", "seed", "learning_rate", "max_steps", "per_device_train_batch_size", "save_steps")
    shared += ("use_cpu", "report_to")
    for key in shared:
        for config in ("ppo/tiny_cpu.yaml", "sft/tiny_cpu.yaml"):
            assert f"\n{key}: " in (CONFIGS / config).read_text(), (key, config)
    assert (ppo_config.max_steps, ppo_config.save_steps, ppo_config.report_to) == (4, 2, [])
    assert ppo_config.batch_size == 8  # 4 per micro-batch x 1 accumulation step x 2 mini-batches
    assert not hasattr(ppo_config, "num_steps")


def test_sigterm_stops_ppo_at_a_step_boundary_with_a_checkpoint_and_exit_143(pipeline):
    root, _ = pipeline
    output_dir = root / "ppo-stopped"
    command = [sys.executable, str(REPO / "recipes/ppo.py"), "--config", str(CONFIGS / "ppo/tiny_cpu.yaml")]
    command += ["--model_name_or_path", str(root / "sft"), "--output_dir", str(output_dir), "--sample_steps", "0"]
    process = subprocess.Popen(
        [*command, "--max_steps", "100000", "--save_steps", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not (output_dir / "metrics.jsonl").is_file() or not (output_dir / "metrics.jsonl").read_text():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "Stopped by SIGTERM at step" in out
    assert read_run(output_dir).status == "stopped"
    stopped_at = int(Path(resolve_checkpoint("latest", output_dir)).name.split("-")[1])
    finished = subprocess.run(
        [*command, "--max_steps", str(stopped_at + 1), "--resume_from_checkpoint", "latest"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, stopped_at + 2))


def test_ppo_prompts_come_from_any_preference_source(tmp_path):
    import csv

    from toolkit.rlhf.prompts import PromptDataArguments, load_prompts

    dialogue = "\n\nHuman: {}\n\nAssistant: {}"
    rows = tmp_path / "pairs.csv"  # read like a Hub dataset, through datasets' own loader
    with open(rows, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["chosen", "rejected"])
        for question, answer in [("Hi?", "Hello."), ("Sky?", "Blue.")]:
            writer.writerow([dialogue.format(question, answer), dialogue.format(question, "No.")])
    prompts = load_prompts(PromptDataArguments(dataset=str(rows), num_prompts=1))
    assert prompts["prompt"] == ["\n\nHuman: Hi?\n\nAssistant:"]
