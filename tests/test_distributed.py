"""accelerate_configs/ and a real 2-process run (DDP over gloo on CPU) against a 1-process run."""

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from recipes_loader import REPO, load_recipe
from toolkit.runs import is_complete, read_run

CONFIGS = {
    "cpu.yaml": DistributedType.NO,
    "single_gpu.yaml": DistributedType.NO,
    "multi_gpu.yaml": DistributedType.MULTI_GPU,
    "fsdp.yaml": DistributedType.FSDP,
    "deepspeed_zero2.yaml": DistributedType.DEEPSPEED,
    "deepspeed_zero3.yaml": DistributedType.DEEPSPEED,
}


def test_every_accelerate_config_loads_with_accelerates_loader():
    found = sorted(p.name for p in (REPO / "accelerate_configs").glob("*.yaml"))
    assert found == sorted(CONFIGS)
    for name, distributed_type in CONFIGS.items():
        config = load_config_from_file(str(REPO / "accelerate_configs" / name))
        assert config.distributed_type == distributed_type, name
    assert load_config_from_file(str(REPO / "accelerate_configs/fsdp.yaml")).fsdp_config["fsdp_version"] == 2
    zero3 = load_config_from_file(str(REPO / "accelerate_configs/deepspeed_zero3.yaml"))
    assert zero3.deepspeed_config["zero_stage"] == 3


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    base = tmp_path / "base"
    load_recipe("pretrain").main(
        ["--config", str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml"), "--output_dir", str(base)]
    )
    common = ["--config", str(REPO / "recipes/configs/sft/tiny_cpu.yaml"), "--model_name_or_path", str(base)]
    # Plain SGD: Adam divides by tiny second moments, which blows float summation-order noise up to +-lr per step
    # and would hide what this test checks (same samples per step, correctly averaged gradients).
    common += ["--optim", "sgd", "--learning_rate", "0.5", "--logging_steps", "1"]
    single = tmp_path / "single"
    load_recipe("sft").main([*common, "--output_dir", str(single), "--per_device_train_batch_size", "8"])

    ddp = tmp_path / "ddp"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    launch += [str(REPO / "accelerate_configs/multi_gpu.yaml"), "--num_processes", "2"]
    command = [*launch, str(REPO / "recipes/sft.py"), *common, "--output_dir", str(ddp)]
    result = subprocess.run([*command, "--per_device_train_batch_size", "4"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    a, b = load_file(single / "adapter_model.safetensors"), load_file(ddp / "adapter_model.safetensors")
    assert any(a[name].abs().sum() > 0 for name in a if "lora_B" in name)
    for name in a:
        # Same samples per step, gradients all-reduced over gloo: equal up to float summation order.
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)

    def logged_losses(folder):
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return [row["loss"] for row in history if "loss" in row]

    assert len(logged_losses(single)) == 10
    assert logged_losses(ddp) == pytest.approx(logged_losses(single), abs=1e-5)
    single_eval = json.loads((single / "metrics.json").read_text())["eval_loss"]
    assert json.loads((ddp / "metrics.json").read_text())["eval_loss"] == pytest.approx(single_eval, abs=1e-5)


def launch_two_processes(recipe: str, *arguments: str, **popen) -> list[str]:
    """The command README gives for two processes on one machine (on CPU: gloo)."""
    config = str(REPO / "accelerate_configs/multi_gpu.yaml")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--num_processes", "2"]
    return [*launch, str(REPO / f"recipes/{recipe}.py"), *arguments]


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    load_recipe("pretrain").main(
        ["--config", str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml"), "--output_dir", str(root / "base")]
    )
    sft = ["--config", str(REPO / "recipes/configs/sft/tiny_cpu.yaml"), "--model_name_or_path", str(root / "base")]
    load_recipe("sft").main([*sft, "--output_dir", str(root / "sft")])
    return root / "sft"


@pytest.mark.slow
def test_ppo_under_the_documented_two_process_launch_is_distributed(sft_model, tmp_path):
    """`accelerate launch --config_file accelerate_configs/multi_gpu.yaml --num_processes 2 recipes/ppo.py`: both
    ranks form one job (episodes per step double), and the main process alone writes the metrics."""
    common = ["--config", str(REPO / "recipes/configs/ppo/tiny_cpu.yaml"), "--model_name_or_path", str(sft_model)]
    common += ["--max_steps", "2", "--save_steps", "1"]
    load_recipe("ppo").main([*common, "--output_dir", str(tmp_path / "one")])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = launch_two_processes("ppo", *common, "--output_dir", str(tmp_path / "two"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (
        [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        for name in ("one", "two")
    )
    assert [row["step"] for row in two] == [1, 2]  # each line once
    assert [row["episodes"] for row in two] == [2 * row["episodes"] for row in one]
    # Both ranks resume the run's own checkpoint (its optimizer state was saved from the gloo job's device) and
    # end at the uninterrupted run's weights.
    resume = ["--resume_from_checkpoint", str(tmp_path / "two" / "checkpoint-1"), "--output_dir", str(tmp_path / "on")]
    result = subprocess.run(launch_two_processes("ppo", *common, *resume), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, weights in load_file(tmp_path / "two" / "checkpoint-2" / "trained_weights.safetensors").items():
        assert torch.equal(
            load_file(tmp_path / "on" / "checkpoint-2" / "trained_weights.safetensors")[name], weights
        ), name


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_at_the_same_step_with_one_checkpoint(sft_model, tmp_path):
    output_dir = tmp_path / "ddp"
    base = str(sft_model.parent / "base")
    arguments = ["--config", str(REPO / "recipes/configs/sft/tiny_cpu.yaml"), "--model_name_or_path", base]
    arguments += ["--method", "full", "--output_dir", str(output_dir), "--max_steps", "100000"]
    arguments += ["--save_steps", "100000", "--eval_steps", "100000", "--logging_steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        launch_two_processes("sft", *arguments), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    deadline, log = time.time() + 300, ""
    while "'loss'" not in log and time.time() < deadline:
        log += launcher.stdout.readline()
    rank_one = next(pid for pid in process_ids(str(output_dir)) if environment(pid).get("RANK") == "1")
    os.kill(rank_one, signal.SIGTERM)
    out, _ = launcher.communicate(timeout=300)
    # A stop, as a scheduler reads it: 128 + SIGTERM from the launcher, as when the launcher itself is signalled
    # (rank 1's own 143 read to torchrun's agent as a failure: exit 1).
    assert launcher.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "Stopped by SIGTERM at step" in out
    assert read_run(output_dir).status == "stopped"
    checkpoints = list(output_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and is_complete(checkpoints[0])


def process_ids(word: str) -> list[int]:
    """Processes whose command line holds `word`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if word in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def environment(pid: int) -> dict[str, str]:
    try:
        pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(pair.decode(errors="replace").split("=", 1) for pair in pairs if b"=" in pair)


BLOCKS_EACH_RANK_READS = """
import dataclasses, json, sys
from pathlib import Path

from accelerate import PartialState

from toolkit.pipelines import pretrain
from toolkit.pipelines.common import job_parser

model_args, data_args, run_args, training_args = job_parser("pretrain").parse_args_and_config(sys.argv[1:])
tokenizer, model, blocks = pretrain.prepare(model_args, data_args, training_args)
train = blocks["train"]
trainer = pretrain.build_trainer(model, tokenizer, blocks, training_args)
index_of = {tuple(train[i]["input_ids"].tolist()): i for i in range(len(train))}
read = [index_of[tuple(row.tolist())] for batch in trainer.get_train_dataloader() for row in batch["input_ids"]]
strided = {"read": read, "blocks": len(train)}

# Two random blocks may hold the same tokens: the indices each epoch reads come from the dataloader's own sampler.
# Training then runs those two epochs, and each rank's model sees the blocks at its indices, of each epoch.
random_data_args = dataclasses.replace(data_args, block_sampling="random")
tokenizer, model, blocks = pretrain.prepare(model_args, random_data_args, training_args)
train = blocks["train"]
trainer = pretrain.build_trainer(model, tokenizer, blocks, training_args)
loader = trainer.get_train_dataloader()
reads = []
for epoch in (0, 1):
    loader.set_epoch(epoch)
    reads.append([index for batch in loader.batch_sampler for index in batch])
trained = []
model.register_forward_pre_hook(lambda _, args, kwargs: trained.extend(kwargs["input_ids"].tolist()), with_kwargs=True)
trainer.train()
expected = []
for epoch, indices in enumerate(reads):
    train.set_epoch(epoch)
    expected += train.input_ids(indices).tolist()
random = {"reads": reads, "blocks": len(train), "trained_on_each_epochs_blocks": trained == expected}
rank = PartialState().process_index
Path(training_args.output_dir, f"rank{rank}.json").write_text(json.dumps({"strided": strided, "random": random}))
"""


def assert_split_between_ranks(first: list[int], second: list[int], blocks: int) -> None:
    """One epoch's block indices, 4 per rank and step, are split between the two ranks: each read by one of them,
    once, except that accelerate fills the last global batch by reading the first blocks again."""
    assert len(first) == len(second) == -(-blocks // 8) * 4
    reads = collections.Counter(first + second)
    assert set(reads) == set(range(blocks))
    assert sorted(reads.values()) == [1] * (2 * blocks - len(first + second)) + [2] * (len(first + second) - blocks)


def test_two_ddp_ranks_read_disjoint_blocks_of_the_token_file(tmp_path):
    """The pretraining pipeline's own data and Trainer under the documented 2-process launch: one epoch of the
    memory-mapped blocks is split between the ranks, each block read by exactly one of them; with random offsets as
    well, through two epochs of training, each of its own blocks."""
    random = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(random.choice(list("abcdefghij \n"), size=20_000)))  # no two strided blocks alike
    script = tmp_path / "blocks_each_rank_reads.py"
    script.write_text(BLOCKS_EACH_RANK_READS)
    output_dir = tmp_path / "ddp"
    output_dir.mkdir()
    arguments = ["--config", str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml"), "--dataset", str(corpus)]
    arguments += ["--output_dir", str(output_dir), "--per_device_train_batch_size", "4", "--use_cpu", "true"]
    arguments += ["--max_steps", "-1", "--num_train_epochs", "2", "--eval_strategy", "no", "--save_strategy", "no"]
    config = str(REPO / "accelerate_configs/multi_gpu.yaml")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--num_processes", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launch, str(script), *arguments], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [json.loads((output_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    strided = [rank["strided"] for rank in ranks]
    assert strided[0]["blocks"] == strided[1]["blocks"] > 100
    assert_split_between_ranks(strided[0]["read"], strided[1]["read"], strided[0]["blocks"])

    offsets = [rank["random"] for rank in ranks]
    assert offsets[0]["blocks"] == offsets[1]["blocks"] == strided[0]["blocks"]
    for epoch in (0, 1):
        assert_split_between_ranks(offsets[0]["reads"][epoch], offsets[1]["reads"][epoch], offsets[0]["blocks"])
    for rank, record in enumerate(offsets):
        assert record["trained_on_each_epochs_blocks"], f"rank {rank} trained on blocks of another epoch"


@pytest.mark.slow
def test_dpo_on_two_processes_matches_one_process_with_the_same_global_batch(sft_model, tmp_path):
    """Same pairs per step on 1 process x 8 and 2 processes x 4, gradients all-reduced (plain SGD, as above): the same
    adapter, and the same per-pair held-out preference outcomes gathered from both processes. (TRL's own evaluation
    metrics are means of per-batch means, so they move with the batching: not compared.)"""
    common = ["--config", str(REPO / "recipes/configs/dpo/tiny_cpu.yaml"), "--model_name_or_path", str(sft_model)]
    common += [
        "--max_steps",
        "6",
        "--eval_steps",
        "6",
        "--save_steps",
        "6",
        "--optim",
        "sgd",
        "--learning_rate",
        "0.5",
    ]
    load_recipe("dpo").main([*common, "--output_dir", str(tmp_path / "one"), "--per_device_train_batch_size", "8"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = launch_two_processes("dpo", *common, "--output_dir", str(tmp_path / "two"))
    result = subprocess.run([*command, "--per_device_train_batch_size", "4"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("one", "two"))
    assert any(a[name].abs().sum() > 0 for name in a if "lora_B" in name)
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert two["global_step"] == 6 and 0 <= two["eval_rewards/accuracies"] <= 1
    for key in ("before", "", "gained", "lost"):  # every one of the 40 held-out pairs, judged once
        name = "eval_preference_accuracy" + (f"_{key}" if key else "")
        assert two[name] == one[name], name
    assert two["units"] == one["units"] == 6 * 8
    assert read_run(tmp_path / "two").status == "finished"


@pytest.mark.slow
def test_grpo_on_two_processes_gathers_every_completions_reward(sft_model, tmp_path):
    """GRPO under the 2-process launch: each completion is rewarded with the rank that generated it, and the logged
    mean reward is 0.5 at every step, so the metrics come from both processes' completions, not the main one's."""
    arguments = ["--config", str(REPO / "recipes/configs/grpo/tiny_cpu.yaml"), "--model_name_or_path", str(sft_model)]
    arguments += ["--reward_funcs", "reward_functions:process_index", "--reward_weights", "1.0", "--max_steps", "3"]
    arguments += ["--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "grpo")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    result = subprocess.run(launch_two_processes("grpo", *arguments), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((tmp_path / "grpo" / "trainer_state.json").read_text())["log_history"]
    rewards = [row["rewards/process_index/mean"] for row in history if "rewards/process_index/mean" in row]
    assert rewards == [0.5, 0.5, 0.5]
    assert read_run(tmp_path / "grpo").status == "finished"
