"""recipes/dpo.py end to end on its tiny config, after pretrain and LoRA SFT: what trains and what stays frozen, the
held-out preference accuracy, the run record and model card, and pairs DPO cannot use."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from summaries import checked_summary

from recipes_loader import REPO, load_recipe
from toolkit.loading import load_causal_lm
from toolkit.runs import SFT_MERGED_DIR, read_run

CONFIGS = REPO / "recipes/configs"
pretrain, sft, dpo = (load_recipe(name) for name in ("pretrain", "sft", "dpo"))


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    """pretrain -> LoRA SFT (an adapter folder, which DPO merges first)."""
    root = tmp_path_factory.mktemp("dpo")
    pretrain.main(["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(root / "base")])
    sft_argv = ["--config", str(CONFIGS / "sft/tiny_cpu.yaml"), "--model_name_or_path", str(root / "base")]
    sft.main([*sft_argv, "--output_dir", str(root / "sft")])
    return root


def dpo_argv(root, output_dir, *extra):
    config = str(CONFIGS / "dpo/tiny_cpu.yaml")
    return ["--config", config, "--model_name_or_path", str(root / "sft"), "--output_dir", str(output_dir), *extra]


def weights(folder) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in load_causal_lm(folder).state_dict().items()}


def test_lora_dpo_trains_only_the_adapter_on_the_merged_sft_model(sft_model, tmp_path):
    metrics = dpo.main(dpo_argv(sft_model, tmp_path / "dpo"))
    assert checked_summary(tmp_path / "dpo", "dpo")["units"] == metrics["units"]
    assert 0 <= metrics["eval_rewards/accuracies"] <= 1 and "eval_rewards/margins" in metrics
    assert metrics["global_step"] == 20 and metrics["units"] == 20 * 8 and metrics["units_per_second"] > 0
    # The policy's own preference on the 40 held-out pairs: before is the SFT model's, gains and losses add up.
    before, after = metrics["eval_preference_accuracy_before"], metrics["eval_preference_accuracy"]
    change = metrics["eval_preference_accuracy_gained"] - metrics["eval_preference_accuracy_lost"]
    assert round((after - before) * 40) == change
    adapter = load_file(tmp_path / "dpo" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in adapter.items())
    assert not (tmp_path / "dpo" / "ref").exists()  # TRL copies a ready PeftModel's adapter as a "ref" adapter
    # The reference is the adapter-disabled base: the merged SFT model, which the adapter loads on unchanged.
    probe = torch.tensor([[1, 2, 3, 4, 5]])
    reference, trained = load_causal_lm(tmp_path / "dpo" / SFT_MERGED_DIR), load_causal_lm(tmp_path / "dpo")
    with torch.no_grad():
        assert not torch.equal(trained(probe).logits, reference(probe).logits)
        with trained.disable_adapter():
            assert torch.equal(trained(probe).logits, reference(probe).logits)
    record = read_run(tmp_path / "dpo")
    assert (record.job, record.method, record.status) == ("dpo", "lora", "finished") and record.peak_memory_mib > 0
    assert json.loads((tmp_path / "dpo" / "metrics.json").read_text())["global_step"] == 20
    assert (tmp_path / "dpo" / "training_curves.png").exists()


def test_full_dpo_changes_every_weight_matrix_and_keeps_the_reference(sft_model, tmp_path):
    dpo.main(dpo_argv(sft_model, tmp_path / "full", "--method", "full", "--max_steps", "4", "--eval_steps", "4"))
    before, after = weights(tmp_path / "full" / SFT_MERGED_DIR), weights(tmp_path / "full")
    assert set(before) == set(after)
    matrices = [name for name in before if before[name].dim() == 2]
    assert all(not torch.equal(before[name], after[name]) for name in matrices)


def test_pairs_without_a_prompt_are_refused_with_the_fix(sft_model, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n" for i in range(20)))
    with pytest.raises(ValueError, match="DPO needs a prompt for each pair.*--explicit_prompt true"):
        dpo.main(dpo_argv(sft_model, tmp_path / "out", "--dataset", str(pairs)))


def test_resuming_from_a_checkpoint_ends_at_the_uninterrupted_runs_weights(sft_model, tmp_path):
    steps = ["--max_steps", "12", "--save_steps", "6", "--eval_steps", "12", "--save_total_limit", "2"]
    dpo.main(dpo_argv(sft_model, tmp_path / "whole", *steps))
    whole = load_file(tmp_path / "whole" / "adapter_model.safetensors")

    def resumed_from_step_6(name: str, shift: float = 0.0) -> dict[str, torch.Tensor]:
        folder = tmp_path / name
        shutil.copytree(tmp_path / "whole" / "checkpoint-6", folder / "checkpoint-6")
        adapter = folder / "checkpoint-6" / "adapter_model.safetensors"
        save_file({key: value + shift for key, value in load_file(adapter).items()}, adapter)
        dpo.main(dpo_argv(sft_model, folder, *steps, "--resume_from_checkpoint", "latest"))
        return load_file(folder / "adapter_model.safetensors")

    resumed = resumed_from_step_6("resumed")
    assert set(resumed) == set(whole)
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-6, rtol=0, msg=name)
    # The second half really starts from the checkpoint: shifted checkpoint weights end elsewhere.
    shifted = resumed_from_step_6("shifted", shift=0.01)
    assert any((shifted[name] - whole[name]).abs().max() > 1e-3 for name in whole)
