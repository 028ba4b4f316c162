"""SIGKILL during checkpoint saves: `--resume_from_checkpoint latest` resumes from a complete checkpoint and ends
with the weights of a run that was never interrupted (pretraining and PPO, several kill points each)."""

import random
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from recipes_loader import REPO, load_recipe
from toolkit.runs import is_complete

CONFIGS = REPO / "recipes/configs"
SAVE_STEPS, MAX_STEPS = 2, 8
pytestmark = pytest.mark.slow


def weights(folder):
    """Every tensor of every safetensors file under `folder`, keyed by file and name."""
    return {
        f"{path.relative_to(folder)}:{name}": tensor
        for path in sorted(folder.rglob("*.safetensors"))
        if "checkpoint-" not in str(path.relative_to(folder))
        for name, tensor in load_file(path).items()
    }


def kill_during_a_save(command, output_dir, save_number: int, trigger: str, log) -> bool:
    """Run `command` until the `save_number`-th checkpoint has `trigger` (a file written before the save's last),
    SIGKILL it there, and say whether that checkpoint was complete all the same."""
    target = output_dir / f"checkpoint-{save_number * SAVE_STEPS}"
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not (target / trigger).exists():
        assert process.poll() is None, f"the run ended before its save {save_number} was cut: {log.name}"
        assert time.time() < deadline
        time.sleep(0.0002)
    process.kill()
    process.wait()
    return is_complete(target)


def check_kill_and_resume(tmp_path, command, triggers):
    """One kill per stage of a save (each trigger file), in a save drawn at random; each run resumes to the end."""
    reference = tmp_path / "uninterrupted"
    subprocess.run([*command, "--output_dir", str(reference)], check=True, capture_output=True)
    expected, cut_short = weights(reference), 0
    for seed, trigger in enumerate(triggers):
        save_number = random.Random(seed).randint(2, MAX_STEPS // SAVE_STEPS - 1)  # one complete save before it
        output_dir = tmp_path / f"killed-{seed}"
        run = [*command, "--output_dir", str(output_dir)]
        with open(tmp_path / f"killed-{seed}.log", "w") as log:
            complete = kill_during_a_save(run, output_dir, save_number, trigger, log)
        cut_short += not complete
        resumed = subprocess.run([*run, "--resume_from_checkpoint", "latest"], capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        if not complete:
            assert f"Skipping checkpoint-{save_number * SAVE_STEPS}" in resumed.stderr
        got = weights(output_dir)
        assert got.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=f"seed {seed}: {key}")
    assert cut_short > 0, "no kill landed inside a save: the test did not exercise a partial checkpoint"


def test_pretraining_killed_during_saves_resumes_to_the_same_weights(tmp_path):
    command = [sys.executable, str(REPO / "recipes/pretrain.py"), "--config", str(CONFIGS / "pretrain/tiny_cpu.yaml")]
    command += ["--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--eval_steps", "100"]
    command += ["--save_total_limit", "2", "--plot", "false"]
    check_kill_and_resume(tmp_path, command, ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"])


def test_ppo_killed_during_saves_resumes_to_the_same_weights(tmp_path):
    pretrain, sft = load_recipe("pretrain"), load_recipe("sft")
    pretrain.main(["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(tmp_path / "base")])
    sft.main(
        [
            *("--config", str(CONFIGS / "sft/tiny_cpu.yaml")),
            *("--model_name_or_path", str(tmp_path / "base"), "--output_dir", str(tmp_path / "sft")),
        ]
    )
    command = [sys.executable, str(REPO / "recipes/ppo.py"), "--config", str(CONFIGS / "ppo/tiny_cpu.yaml")]
    command += ["--model_name_or_path", str(tmp_path / "sft"), "--sample_steps", "0", "--plot", "false"]
    command += ["--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--save_total_limit", "2"]
    check_kill_and_resume(
        tmp_path, command, ["rng_state_0.json", "trained_weights.safetensors", "optimizer.pt", "ppo_state.json"]
    )
