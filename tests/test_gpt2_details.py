"""What a GPT-2 user meets, on a stand-in for openai-community/gpt2: a GPT2Config model with the real GPT-2 tokenizer.

The pad token is EOS reused (GPT-2 has none) and the attention mask, not the pad id, says what is padding; LoRA goes
on the fused `c_attn` Conv1D with `fan_in_fan_out`; a prompt-tuned GPT-2 generates through `toolkit.generate`;
GPT-2 reward models score the last real token whichever side is padded.
"""

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from toolkit import apply_lora, apply_prompt_tuning, generate
from toolkit.generation import generate_completions
from toolkit.loading import load_gpt2_tokenizer
from toolkit.rlhf.reward_model import reward_model_from_causal_lm, reward_scores

PROMPTS = ["The quick brown fox", "Hello", "Question: what is 2 + 3?\nAnswer:"]


@pytest.fixture
def tokenizer(shared_data):
    return load_gpt2_tokenizer(shared_data / "gpt2-tokenizer", padding_side="left")


@pytest.fixture
def gpt2(tokenizer):
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=128, vocab_size=len(tokenizer), eos_token_id=eos)
    return GPT2LMHeadModel(config).eval()


def test_pad_token_is_eos_and_padding_follows_the_attention_mask(gpt2, tokenizer):
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    # An EOS inside a prompt is a real token: only the mask marks padding, so a batch equals each prompt alone.
    prompts = [*PROMPTS, "First document.<|endoftext|>Second"]
    batched = generate_completions(gpt2, tokenizer, prompts, max_new_tokens=6, batch_size=len(prompts))
    alone = [generate_completions(gpt2, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == alone
    alone_ids = tokenizer(prompts[-1])["input_ids"]
    assert alone_ids.count(tokenizer.eos_token_id) == 1
    padded = tokenizer(prompts, padding=True, return_tensors="pt")
    assert padded["attention_mask"][-1].sum() == len(alone_ids)  # the in-text EOS is attended, the pads are not


def test_lora_on_c_attn_with_fan_in_fan_out_trains_only_the_adapter(gpt2, tokenizer):
    before = {name: p.detach().clone() for name, p in gpt2.named_parameters()}
    model = apply_lora(gpt2, r=4, alpha=8, dropout=0.0)
    config = model.peft_config["default"]
    assert set(config.target_modules) == {"c_attn"} and config.fan_in_fan_out
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    with torch.no_grad():
        for p in lora_b:
            p.normal_(0, 0.02)  # a trained adapter, so merging changes the weights
    batch = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(**batch, labels=labels).loss.backward()
    optimizer.step()
    model.eval()
    for name, p in model.get_base_model().named_parameters():
        if "lora_" not in name:
            original = name.replace("base_layer.", "")
            assert torch.equal(p, before[original]), f"{name} changed"
    with torch.no_grad():
        adapted = model(**batch).logits
        merged = model.merge_and_unload()(**batch).logits
    # fan_in_fan_out: the adapter is merged in Conv1D's (in, out) layout, so merged and unmerged agree.
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=0)


def test_prompt_tuned_gpt2_generates_through_toolkit_generate(gpt2, tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)  # as a GPT-2 model folder holds it
    model = apply_prompt_tuning(
        gpt2, num_virtual_tokens=4, init_text="Solve it.", tokenizer_name_or_path=str(tmp_path)
    )
    batch = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    new = generate(model, **batch, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert new.shape == (len(PROMPTS), 5)
    # The same greedy tokens by hand: the soft prompt, then the prompt's real tokens, no cache.
    soft = model.get_prompt(batch_size=1)
    for row, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        for _ in range(5):
            embeds = torch.cat([soft, gpt2.get_input_embeddings()(ids)], dim=1)
            with torch.no_grad():
                next_id = gpt2(inputs_embeds=embeds, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
        assert new[row].tolist() == ids[0, -5:].tolist(), prompt


def test_gpt2_reward_model_scores_the_last_real_token_with_either_padding_side(gpt2, tokenizer):
    reward = reward_model_from_causal_lm(gpt2, tokenizer).eval()
    assert isinstance(reward, GPT2ForSequenceClassification)
    assert reward.config.pad_token_id == tokenizer.eos_token_id
    texts = [p + " and that is all." for p in PROMPTS]
    with torch.no_grad():
        alone = torch.cat([reward(**tokenizer([t], return_tensors="pt")).logits[:, 0] for t in texts])
        for side in ("left", "right"):
            tokenizer.padding_side = side
            torch.testing.assert_close(reward_scores(reward, tokenizer, texts), alone, atol=1e-5, rtol=0, msg=side)
        # GPT-2's own forward (what TRL's RewardTrainer calls, right-padded) finds the last real token itself; it
        # does not derive positions from the mask, which is why the toolkit's scoring passes them (left padding).
        right_padded = reward(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(right_padded, alone, atol=1e-5, rtol=0)
