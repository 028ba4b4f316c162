"""recipes/sft.py: full fine-tuning, LoRA and prompt tuning change exactly what they should; PEFT helpers."""

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from safetensors.torch import load_file
from summaries import checked_summary
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from recipes_loader import REPO, load_recipe
from toolkit.adapters import apply_lora, apply_prompt_tuning, check_lora_targets, parameter_counts
from toolkit.data import load_raw
from toolkit.generation import generate
from toolkit.loading import load_causal_lm

pretrain = load_recipe("pretrain")
sft = load_recipe("sft")
SFT_TINY = str(REPO / "recipes/configs/sft/tiny_cpu.yaml")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A small GPT pretrained for a few steps by the real pretraining recipe, with its char tokenizer."""
    output_dir = tmp_path_factory.mktemp("pretrained") / "base"
    config = str(REPO / "recipes/configs/pretrain/tiny_cpu.yaml")
    pretrain.main(["--config", config, "--output_dir", str(output_dir), "--max_steps", "10", "--eval_steps", "10"])
    return output_dir


def base_weights(base_dir):
    """Every tensor of the base model, the tied lm_head included."""
    return AutoModelForCausalLM.from_pretrained(base_dir).state_dict()


def run_sft(base_dir, output_dir, *extra):
    return sft.main(
        ["--config", SFT_TINY, "--model_name_or_path", str(base_dir), "--output_dir", str(output_dir), *extra]
    )


def test_full_fine_tuning_changes_every_weight(base_dir, tmp_path):
    metrics = run_sft(base_dir, tmp_path / "full", "--method", "full", "--learning_rate", "1e-3")
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    assert checked_summary(tmp_path / "full", "sft")["method"] == "full"
    before = load_file(base_dir / "model.safetensors")
    after = load_file(tmp_path / "full" / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []


def test_lora_changes_only_adapters_and_merges(base_dir, tmp_path):
    output_dir = tmp_path / "lora"
    metrics = run_sft(base_dir, output_dir, "--method", "lora", "--merge_adapter", "true")
    # r=4 on q_proj and v_proj of 2 layers, width 64: 2 layers x 2 modules x (64*4 + 4*64)
    assert metrics["trainable_parameters"] == 2 * 2 * (64 * 4 + 4 * 64)

    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert all(adapter[name].abs().sum() > 0 for name in adapter if "lora_B" in name)  # B starts at zero

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(base, output_dir).eval()
    before = base_weights(base_dir)
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, before[name.replace(".base_layer", "")]), name

    merged = AutoModelForCausalLM.from_pretrained(output_dir / "merged").eval()
    x = torch.randint(0, 40, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(merged(x).logits, model(x).logits, atol=1e-5, rtol=0)


def test_prompt_tuning_changes_only_the_prompt(base_dir, tmp_path):
    output_dir = tmp_path / "prompt"
    init_text = "Solve the problem step by step."
    metrics = run_sft(base_dir, output_dir, "--method", "prompt_tuning", "--prompt_tuning_init_text", init_text)
    assert metrics["trainable_parameters"] == 8 * 64

    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert list(adapter) == ["prompt_embeddings"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    init_ids = tokenizer(init_text)["input_ids"][:8]
    initial = base.get_input_embeddings().weight[init_ids].detach()
    assert not torch.equal(adapter["prompt_embeddings"], initial)  # trained away from the text init
    assert (adapter["prompt_embeddings"] - initial).abs().max() < 1  # but started there

    model = PeftModel.from_pretrained(base, output_dir).eval()
    before = base_weights(base_dir)
    for name, tensor in model.get_base_model().state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_prompt_tuned_generation_matches_a_manual_loop(base_dir):
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    torch.manual_seed(0)
    model = apply_prompt_tuning(base, num_virtual_tokens=5).eval()
    torch.nn.init.normal_(model.prompt_encoder["default"].embedding.weight, std=1.0)
    prompt = torch.randint(0, 40, (1, 6))
    new = generate(model, prompt, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)

    soft = model.get_prompt(batch_size=1)
    ids = prompt
    with torch.no_grad():
        for _ in range(12):
            logits = base(inputs_embeds=torch.cat([soft, base.get_input_embeddings()(ids)], 1)).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(new, ids[:, 6:])

    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), prompt], 1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], 1)
    left = generate(model, padded, mask, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(left, new)


def gpt2_small_on_meta():
    with torch.device("meta"):
        return GPT2LMHeadModel(GPT2Config())


def test_gpt2_small_lora_on_c_attn_has_the_published_count():
    model = apply_lora(gpt2_small_on_meta(), r=8)
    assert parameter_counts(model) == (294_912, 124_734_720)


def test_gpt2_lora_with_attention_output_projection():
    model = apply_lora(gpt2_small_on_meta(), r=8, include_attention_output=True)
    assert parameter_counts(model)[0] == 442_368
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    assert not any(".mlp." in name for name in adapted)


def test_bare_c_proj_warns_that_it_hits_the_mlp():
    with pytest.warns(UserWarning, match="outside attention.*'attn.c_proj' instead of 'c_proj'"):
        check_lora_targets(gpt2_small_on_meta(), ["c_proj"])


def test_missing_lora_target_names_the_layers(base_dir, tmp_path):
    with pytest.raises(ValueError, match=r"\['query'\] match no module .* named: down_proj, k_proj, lm_head, ln_1"):
        run_sft(base_dir, tmp_path / "typo", "--lora_target_modules", "query", "v_proj")


def test_lora_on_all_linear_adapts_every_linear_layer_but_the_output_one(base_dir, tmp_path):
    """PEFT's all-linear (TRL's LoRA guide recommends it) was refused as a module name that matches nothing."""
    run_sft(base_dir, tmp_path / "all-linear", "--lora_target_modules", "all-linear", "--max_steps", "2")
    adapted = {name.split(".lora_")[0] for name in load_file(tmp_path / "all-linear" / "adapter_model.safetensors")}
    layers = {name.rsplit(".", 1)[-1] for name in adapted}
    assert layers == {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}, layers
    gpt2 = apply_lora(gpt2_small_on_meta(), target_modules=["all-linear"])
    gpt2_layers = {
        name.split(".lora_")[0].rsplit(".h.0.", 1)[-1] for name, _ in gpt2.named_parameters() if "lora_A" in name
    }
    assert {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"} <= gpt2_layers
    assert not any("lm_head" in name for name in gpt2_layers)


def test_max_length_over_context_with_soft_prompt(base_dir, tmp_path):
    with pytest.raises(ValueError, match=r"--max_length 256 plus --num_virtual_tokens 8 exceeds .* \(256 positions\)"):
        run_sft(base_dir, tmp_path / "long", "--method", "prompt_tuning", "--max_length", "256")


def test_max_length_over_context(base_dir, tmp_path):
    with pytest.raises(ValueError, match=r"--max_length 512 is longer than the model's context \(256 positions\)"):
        run_sft(base_dir, tmp_path / "long", "--max_length", "512")


def test_prompt_tuning_with_no_virtual_token_is_refused(base_dir, tmp_path):
    with pytest.raises(ValueError, match="--num_virtual_tokens 0 leaves prompt tuning nothing to train"):
        run_sft(base_dir, tmp_path / "none", "--method", "prompt_tuning", "--num_virtual_tokens", "0")


def test_unknown_method(base_dir, tmp_path):
    with pytest.raises(ValueError, match="Unknown method 'qlora'"):
        run_sft(base_dir, tmp_path / "q", "--method", "qlora")


def test_finished_run_is_staged_for_the_hub(base_dir, tmp_path):
    output_dir = tmp_path / "pushed"
    run_sft(base_dir, output_dir, "--push_repo_id", "alice/tiny-lora", "--push_dry_run", "true")
    staged = output_dir / "hub-upload"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= {
        p.name for p in staged.iterdir()
    }
    card = ModelCard.load(staged / "README.md")
    assert "lora" in card.data.tags
    assert card.data.datasets == ["arithmetic"]


def test_the_loss_covers_the_completion_and_its_eos_only(base_dir, tmp_path):
    """TRL's completion-only loss: the tiny config's 20 validation problems score each completion character (the
    tokenizer is character level) and the EOS that closes it, never the prompt."""
    metrics = run_sft(base_dir, tmp_path / "count", "--max_steps", "1")
    validation = load_raw("arithmetic", synthetic_sizes={"validation": 20})["validation"]
    assert metrics["eval_tokens"] == sum(len(completion) + 1 for completion in validation["completion"])
    assert 0 <= metrics["eval_mean_token_accuracy"] <= 1 and metrics["eval_entropy"] > 0


def test_full_fine_tuning_from_a_lora_folder_trains_every_weight(base_dir, tmp_path):
    """A LoRA SFT folder loads as base + adapter with every weight frozen; SFT merges it first, so --method full
    trains the merged model (it trained nothing, and DDP refused to start)."""
    run_sft(base_dir, tmp_path / "lora", "--method", "lora")
    metrics = run_sft(tmp_path / "lora", tmp_path / "full", "--method", "full", "--learning_rate", "1e-3")
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    merged = load_causal_lm(str(tmp_path / "lora")).merge_and_unload().state_dict()
    trained = load_file(tmp_path / "full" / "model.safetensors")
    assert all(not torch.equal(trained[name], merged[name]) for name in trained)


def test_a_full_run_overwriting_a_lora_run_leaves_no_adapter_behind(base_dir, tmp_path):
    """The LoRA run's adapter files outlived the overwrite, so eval loaded the old adapter as the full run's model."""
    folder = tmp_path / "run"
    run_sft(base_dir, folder, "--method", "lora", "--max_steps", "1")
    assert (folder / "adapter_config.json").exists()
    run_sft(base_dir, folder, "--method", "full", "--max_steps", "1", "--overwrite_output_dir", "true")
    assert not list(folder.glob("adapter_*"))
    assert not isinstance(load_causal_lm(str(folder)), PeftModel)
