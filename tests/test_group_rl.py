"""recipes/grpo.py and recipes/rloo.py (TRL's GRPOTrainer and RLOOTrainer) end to end on their tiny configs, after
pretrain and LoRA SFT: what trains and what stays frozen, resume after SIGTERM, rewards of every kind, bad input."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from summaries import checked_summary

from recipes_loader import REPO, load_recipe
from toolkit import GPTConfig, GPTForCausalLM
from toolkit.loading import load_causal_lm
from toolkit.rlhf.reward_functions import exact_match_reward, format_reward, reward_functions
from toolkit.rlhf.reward_model import reward_model_from_causal_lm, reward_scores
from toolkit.runs import SFT_MERGED_DIR, read_run
from toolkit.tokenization import build_char_tokenizer

CONFIGS = REPO / "recipes/configs"
pretrain, sft, grpo, rloo = (load_recipe(name) for name in ("pretrain", "sft", "grpo", "rloo"))
RECIPES = {"grpo": grpo, "rloo": rloo}
DIGITS = ["--reward_funcs", "reward_functions:digit_share", "--reward_weights", "1.0"]


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    """pretrain -> LoRA SFT (an adapter folder, which GRPO and RLOO merge first)."""
    root = tmp_path_factory.mktemp("group-rl")
    pretrain.main(["--config", str(CONFIGS / "pretrain/tiny_cpu.yaml"), "--output_dir", str(root / "base")])
    sft_argv = ["--config", str(CONFIGS / "sft/tiny_cpu.yaml"), "--model_name_or_path", str(root / "base")]
    sft.main([*sft_argv, "--output_dir", str(root / "sft")])
    return root / "sft"


def argv(job, sft_model, output_dir, *extra):
    config = str(CONFIGS / job / "tiny_cpu.yaml")
    return ["--config", config, "--model_name_or_path", str(sft_model), "--output_dir", str(output_dir), *extra]


def logged(folder, key):
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [row[key] for row in history if key in row]


@pytest.mark.parametrize("job", ["grpo", "rloo"])
def test_tiny_config_runs_and_lora_trains_only_the_adapter(job, sft_model, tmp_path):
    out = tmp_path / job
    metrics = RECIPES[job].main(argv(job, sft_model, out, *DIGITS))
    assert checked_summary(out, job)["headline"].keys() == {"reward_first_fifth", "reward_last_fifth", "kl_max"}
    assert metrics["global_step"] == 10 and metrics["units"] == 10 * 8 and metrics["units_per_second"] > 0
    assert metrics["unit"] == "episodes" and len(metrics["curves"]["reward"]) == 10
    assert len(logged(out, "rewards/digit_share/mean")) == 10 and len(logged(out, "kl")) == 10
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in adapter.items())
    assert not (out / "ref").exists()  # no copy of the adapter as a reference
    # The reference is the adapter-disabled base: the merged SFT model, which the adapter loads on unchanged.
    probe = torch.tensor([[1, 2, 3, 4, 5]])
    reference, trained = load_causal_lm(out / SFT_MERGED_DIR), load_causal_lm(out)
    with torch.no_grad():
        assert not torch.equal(trained(probe).logits, reference(probe).logits)
        with trained.disable_adapter():
            assert torch.equal(trained(probe).logits, reference(probe).logits)
    record = read_run(out)
    assert (record.job, record.method, record.status) == (job, "lora", "finished")
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 10
    assert (out / "training_curves.png").stat().st_size > 0


def test_full_grpo_changes_every_weight_matrix_against_a_frozen_reference(sft_model, tmp_path):
    out = tmp_path / "full"
    grpo.main(argv("grpo", sft_model, out, *DIGITS, "--method", "full", "--max_steps", "3"))
    before, after = (
        {name: tensor.clone() for name, tensor in load_causal_lm(folder).state_dict().items()}
        for folder in (out / SFT_MERGED_DIR, out)
    )
    assert set(before) == set(after)
    assert all(not torch.equal(before[name], after[name]) for name in before if before[name].dim() == 2)
    assert max(logged(out, "kl")) > 0  # measured against the frozen copy, which the policy left


def test_sigterm_stops_with_a_checkpoint_and_the_resumed_run_ends_at_the_uninterrupted_weights(sft_model, tmp_path):
    steps = ["--max_steps", "8", "--save_steps", "4", "--save_total_limit", "2", "--lr_scheduler_type", "constant"]
    grpo.main(argv("grpo", sft_model, tmp_path / "whole", *DIGITS, *steps))
    whole = load_file(tmp_path / "whole" / "adapter_model.safetensors")

    out = tmp_path / "stopped"
    stopping = ["--reward_funcs", "reward_functions:digit_share_then_sigterm", "--reward_weights", "1.0"]
    with pytest.raises(SystemExit) as stop:
        grpo.main(argv("grpo", sft_model, out, *stopping, *steps))
    assert stop.value.code == 143 and read_run(out).status == "stopped"
    assert (out / "checkpoint-4").is_dir() and not (out / "adapter_model.safetensors").exists()
    grpo.main(argv("grpo", sft_model, out, *DIGITS, *steps, "--resume_from_checkpoint", "latest"))
    resumed = load_file(out / "adapter_model.safetensors")
    # Steps 1-4 come from the checkpoint (rewarded by the stopping function), steps 5-8 from the resumed run.
    assert (
        len(logged(out, "rewards/digit_share_then_sigterm/mean")) == len(logged(out, "rewards/digit_share/mean")) == 4
    )
    assert set(resumed) == set(whole)
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-6, rtol=0, msg=name)
    assert read_run(out).status == "finished"


def test_the_verifiable_rewards_score_answer_and_format():
    prompts = ["Question: 2 + 3?\nAnswer:"] * 3
    responses = [" 2 + 3 = 5\n#### 5", " 2 + 3 = 6\n#### 6", " it is 5"]
    assert exact_match_reward(prompts, responses, final_answer=["5"] * 3) == [1.0, 0.0, 0.0]
    assert exact_match_reward(prompts, responses, final_answer=["5"] * 3, strict=False) == [1.0, 0.0, 1.0]
    assert format_reward(prompts, responses) == [1.0, 1.0, 0.0]
    exact, form = reward_functions(["exact_match", "format"])
    assert (exact.__name__, form.__name__) == ("exact_match", "format")  # TRL logs rewards/<name>/mean
    assert exact(prompts=prompts, completions=responses, final_answer=["5"] * 3, trainer_state=None) == [1.0, 0, 0]


def test_a_reward_model_folder_scores_prompt_response_and_eos(tmp_path):
    tokenizer = build_char_tokenizer("abcdefgh ")
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=32,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    model = reward_model_from_causal_lm(GPTForCausalLM(config), tokenizer)
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    (score,) = reward_functions(["model"], reward_model_name_or_path=str(tmp_path / "rm"))
    prompts, responses = ["abc ", "de "], ["fgh", "a"]
    # Read at the EOS, where reward.py's RewardTrainer learned the score: not at the response's last character.
    texts = [prompt + response for prompt, response in zip(prompts, responses)]
    expected = reward_scores(model.eval(), tokenizer, [text + tokenizer.eos_token for text in texts])
    without_eos = reward_scores(model, tokenizer, texts)
    assert score(prompts=prompts, completions=responses) == pytest.approx(expected.tolist(), abs=1e-6)
    assert not torch.allclose(expected, without_eos)
    with pytest.raises(ValueError, match="--reward_funcs model needs --reward_model_name_or_path"):
        reward_functions(["model"])


@pytest.mark.parametrize(
    "reward, message",
    [
        ("reward_functions:one_too_few", "'one_too_few' returned 7 values for 8 completions"),
        ("reward_functions:returns_none", "'returns_none' returned None, not a list: it must return one number"),
        ("reward_functions:nan_for_the_last", "'nan_for_the_last' returned nan for completion 7 .*finite numbers"),
        ("correctness", "Unknown reward 'correctness': name one of .*'exact_match'.*'package.module:function'"),
        ("reward_functions:missing", "Cannot import the reward function 'reward_functions:missing'"),
    ],
)
def test_a_bad_reward_function_is_refused_by_name(reward, message, sft_model, tmp_path):
    with pytest.raises(ValueError, match=message):
        grpo.main(argv("grpo", sft_model, tmp_path / "out", "--reward_funcs", reward, "--reward_weights", "1"))


@pytest.mark.parametrize("reward", ["none_for_every_completion", "near_the_largest_float"])
def test_a_reward_logged_as_none_or_overflowing_still_saves_the_run(reward, sft_model, tmp_path):
    """The curves were drawn from a None (or inf) reward spread at the end of training, which crashed before the
    adapter and metrics.json were written, and the run was recorded failed."""
    out = tmp_path / "out"
    grpo.main(
        argv(
            "grpo",
            sft_model,
            out,
            "--reward_funcs",
            f"reward_functions:{reward}",
            "--reward_weights",
            "1",
            "--max_steps",
            "2",
        )
    )
    assert read_run(out).status == "finished"
    assert (out / "adapter_model.safetensors").is_file() and (out / "training_curves.png").stat().st_size > 0
    summary = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(value) for _, value in summary["curves"].get("reward", []))


def test_a_group_size_that_does_not_divide_the_batch_names_both_flags(sft_model, tmp_path):
    message = (
        r"--num_generations 3 does not divide the 8 completions sampled per generation step "
        r"\(--per_device_train_batch_size 8 x 1 processes x 1 steps\): make --per_device_train_batch_size a multiple"
    )
    for job in RECIPES:
        with pytest.raises(ValueError, match=message):
            RECIPES[job].main(argv(job, sft_model, tmp_path / job, "--num_generations", "3"))


def test_one_weight_per_reward(sft_model, tmp_path):
    with pytest.raises(ValueError, match="--reward_weights has 1 values for 2 --reward_funcs .*one weight per reward"):
        grpo.main(argv("grpo", sft_model, tmp_path / "out", "--reward_weights", "1"))
