"""accelerate_configs/ and a real 2-process run (DDP over gloo on CPU) against a 1-process run."""

import json
import subprocess
import sys

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from recipes_loader import REPO, load_recipe

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
    launch += [str(REPO / "accelerate_configs/multi_gpu.yaml"), "--num_processes", "2", "--mixed_precision", "no"]
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
