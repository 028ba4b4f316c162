"""Our GPT as a transformers model: GPT-2 parity, KV cache, masks, loss, save/load, remote code, PEFT, errors."""

import subprocess

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
)

from toolkit import (
    PRESETS,
    GPTConfig,
    GPTForCausalLM,
    GPTForSequenceClassification,
    GPTModel,
    gpt2_to_gpt,
    gpt_to_gpt2,
)

VOCAB = 97


def tiny_config(**overrides) -> GPTConfig:
    fields = dict(
        vocab_size=VOCAB, max_position_embeddings=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return GPTConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, **overrides) -> GPTForCausalLM:
    torch.manual_seed(seed)
    return GPTForCausalLM(tiny_config(**overrides)).eval()


@pytest.fixture(scope="module")
def gpt2_and_ours():
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
    ).eval()
    return gpt2, gpt2_to_gpt(gpt2)


def test_gpt2_parity_logits(gpt2_and_ours):
    gpt2, ours = gpt2_and_ours
    x = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (gpt2(x).logits - ours(x).logits).abs().max().item()
    assert diff < 1e-4


def test_gpt2_parity_greedy_generate(gpt2_and_ours):
    gpt2, ours = gpt2_and_ours
    prompt = torch.randint(1, VOCAB, (1, 8), generator=torch.Generator().manual_seed(2))
    kwargs = dict(max_new_tokens=32, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(gpt2.generate(prompt, **kwargs), ours.generate(prompt, **kwargs))


def test_hidden_states_and_attentions_equal_gpt2s(gpt2_and_ours):
    gpt2, ours = gpt2_and_ours
    x = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(x)
    mask[1, :3] = 0  # a left-padded row
    for model in (gpt2, ours):
        model.set_attn_implementation("eager")
    with torch.no_grad():
        theirs = gpt2(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        mine = ours(x, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    for model in (gpt2, ours):
        model.set_attn_implementation("sdpa")
    assert len(mine.hidden_states) == 3 and len(mine.attentions) == 2
    for a, b in zip(theirs.hidden_states, mine.hidden_states, strict=True):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)  # row 1's positions differ: GPT-2 ignores the mask
    for a, b in zip(theirs.attentions, mine.attentions, strict=True):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(a[1, :, :, :3], b[1, :, :, :3], atol=0, rtol=0)  # no weight on padding


def test_output_flags_from_the_config_and_return_dict_false_give_gpt2s_tuple(gpt2_and_ours):
    gpt2, ours = gpt2_and_ours
    x = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))
    ours.config.output_hidden_states = True
    try:
        with torch.no_grad():
            from_config = ours(x)
            theirs = gpt2(x, labels=x, use_cache=False, output_hidden_states=True, return_dict=False)
            mine = ours(x, labels=x, use_cache=False, return_dict=False)
    finally:
        ours.config.output_hidden_states = False
    assert len(from_config.hidden_states) == 3
    assert isinstance(mine, tuple) and len(mine) == len(theirs) == 3  # loss, logits, hidden states
    torch.testing.assert_close(mine[0], theirs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(mine[1], theirs[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [
        (None, torch.tensor([0, 2])),
        ("single_label_classification", torch.tensor([1, 0])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
        ("regression", torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]])),
    ],
)
def test_sequence_classification_loss_follows_problem_type_as_gpt2s_does(problem_type, labels):
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(0)
    gpt2_config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=VOCAB, num_labels=3)
    gpt2_config.problem_type, gpt2_config.pad_token_id = problem_type, 0
    gpt2 = GPT2ForSequenceClassification(gpt2_config).eval()
    ours = GPTForSequenceClassification(tiny_config(num_labels=3, pad_token_id=0, problem_type=problem_type)).eval()
    state = {k.replace("transformer.", "", 1): v for k, v in gpt2_to_gpt(gpt2_as_lm(gpt2)).state_dict().items()}
    ours.transformer.load_state_dict({k: v for k, v in state.items() if not k.startswith("lm_head")})
    ours.score.weight.data.copy_(gpt2.score.weight.data)
    x = torch.randint(1, VOCAB, (2, 5), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        theirs, mine = gpt2(x, labels=labels), ours(x, labels=labels)
    torch.testing.assert_close(mine.logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-5, rtol=0)
    assert ours.config.problem_type == gpt2.config.problem_type


def gpt2_as_lm(classifier) -> GPT2LMHeadModel:
    """The classifier's body under an LM head, so `gpt2_to_gpt` can convert it."""
    lm = GPT2LMHeadModel(classifier.config)
    lm.transformer.load_state_dict(classifier.transformer.state_dict())
    return lm.eval()


def laid_out_weights(model) -> list[dict]:
    """The decoding-layout copies each module keeps between `generate` calls (empty when none was made)."""
    return [m.decoding_buffers for m in model.modules() if hasattr(m, "decoding_buffers")]


def test_few_rows_decode_on_laid_out_weights_that_never_go_stale():
    import copy

    model = tiny_model(seed=3)
    prompts = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(6))
    kwargs = dict(max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)

    def argmax_loop(m):
        ids = prompts
        with torch.no_grad():
            for _ in range(32):
                ids = torch.cat([ids, m(ids, use_cache=False).logits[:, -1:].argmax(-1)], dim=1)
        return ids

    before = model.generate(prompts, **kwargs)
    assert torch.equal(before, argmax_loop(model))
    assert all(laid_out_weights(model)) and not any(m.decoding for m in model.modules() if hasattr(m, "decoding"))
    memory = [weight.data_ptr() for kept in laid_out_weights(model) for weight, _ in kept.values()]

    # Weights changed in place with no version-counter bump, the model left in eval mode: the kept copies must be
    # refilled from the live weights, not reused.
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-2, fused=True)
    model(prompts, labels=prompts).loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.lm_head.weight.data.mul_(-1)
    after = model.generate(prompts, **kwargs)
    assert [weight.data_ptr() for kept in laid_out_weights(model) for weight, _ in kept.values()] == memory  # reused
    assert not torch.equal(after, before)
    assert torch.equal(after, argmax_loop(model))
    assert torch.equal(after, copy.deepcopy(model).generate(prompts, **kwargs))

    model.train()
    assert not any(laid_out_weights(model))  # training releases the copies


@pytest.mark.parametrize(
    ("rows", "options", "laid_out"),
    [
        (1, dict(max_new_tokens=32), True),
        (2, dict(max_length=40), True),  # 6 prompt tokens + 34 new
        (1, dict(max_new_tokens=8), False),  # too few tokens to pay for the copy
        (3, dict(max_new_tokens=32), False),  # from 3 rows nn.Linear's layout is as fast
        (1, dict(max_new_tokens=32, do_sample=True, num_return_sequences=3), False),
    ],
)
def test_generation_lays_the_weights_out_only_where_it_pays(rows, options, laid_out):
    model = tiny_model(seed=4)
    prompts = torch.randint(1, VOCAB, (rows, 6), generator=torch.Generator().manual_seed(7))
    model.generate(prompts, pad_token_id=0, eos_token_id=None, **options)
    assert all(laid_out_weights(model)) if laid_out else not any(laid_out_weights(model))


def test_convert_back_is_exact(gpt2_and_ours):
    gpt2, ours = gpt2_and_ours
    back = gpt_to_gpt2(ours)
    original, restored = gpt2.state_dict(), back.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key


def test_cached_generation_equals_uncached():
    model = tiny_model()
    prompt = torch.randint(1, VOCAB, (2, 5), generator=torch.Generator().manual_seed(3))
    kwargs = dict(max_new_tokens=64, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = model.generate(prompt, use_cache=True, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape == (2, 69)
    assert torch.equal(cached, uncached)


def test_left_padded_batch_equals_one_by_one():
    model = tiny_model()
    pad = 0
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g) for n in (3, 9, 6)]
    width = max(len(p) for p in prompts)
    input_ids = torch.stack([torch.cat([torch.full((width - len(p),), pad), p]) for p in prompts])
    attention_mask = (torch.arange(width) >= (width - torch.tensor([len(p) for p in prompts]))[:, None]).long()
    kwargs = dict(max_new_tokens=16, do_sample=False, pad_token_id=pad, eos_token_id=None)
    batched = model.generate(input_ids, attention_mask=attention_mask, **kwargs)[:, width:]
    for row, p in enumerate(prompts):
        alone = model.generate(p[None], **kwargs)[0, len(p) :]
        assert torch.equal(batched[row], alone), row


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padding_mask_hides_pad_tokens(attn_implementation):
    model = tiny_model()
    model.set_attn_implementation(attn_implementation)
    x = torch.randint(1, VOCAB, (1, 10), generator=torch.Generator().manual_seed(5))
    padded = torch.cat([x, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        alone = model(x).logits
        right_padded = model(padded, attention_mask=mask).logits[:, :10]
    torch.testing.assert_close(right_padded, alone, atol=1e-5, rtol=0)


def test_eager_and_sdpa_agree():
    x = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(6))
    eager = tiny_model()
    eager.set_attn_implementation("eager")
    sdpa = tiny_model()
    assert sdpa.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(eager(x).logits, sdpa(x).logits, atol=1e-5, rtol=0)


def test_attn_implementation_from_pretrained(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    eager = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config._attn_implementation == "sdpa"


def test_loss_equals_hand_written_cross_entropy_with_ignored_labels():
    model = tiny_model()
    x = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(7))
    labels = x.clone()
    labels[0, :4] = -100
    out = model(x, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, VOCAB)
    targets = labels[:, 1:].reshape(-1)
    keep = targets != -100
    log_probs = torch.log_softmax(logits[keep].double(), dim=-1)
    expected = -log_probs[torch.arange(int(keep.sum())), targets[keep]].mean()
    assert abs(out.loss.item() - expected.item()) < 1e-5


def test_gradient_accumulation_equals_big_batch():
    g = torch.Generator().manual_seed(8)
    x = torch.randint(0, VOCAB, (8, 16), generator=g)
    labels = x.clone()
    labels[torch.rand(8, 16, generator=g) < 0.3] = -100  # uneven token counts per micro-batch

    big = tiny_model(dropout=0.0)
    big(x, labels=labels).loss.backward()

    accumulated = tiny_model(dropout=0.0)
    num_items = (labels[:, 1:] != -100).sum()
    for micro in range(4):
        rows = slice(2 * micro, 2 * micro + 2)
        accumulated(x[rows], labels=labels[rows], num_items_in_batch=num_items).loss.backward()

    for (name, p_big), (_, p_acc) in zip(big.named_parameters(), accumulated.named_parameters(), strict=True):
        torch.testing.assert_close(p_acc.grad, p_big.grad, atol=1e-5, rtol=0, msg=name)


def test_gradient_checkpointing_gives_same_gradients():
    x = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(9))
    plain, checkpointed = tiny_model().train(), tiny_model().train()
    checkpointed.activation_checkpointing_enable()
    plain(x, labels=x).loss.backward()
    checkpointed(x, labels=x).loss.backward()
    for p, q in zip(plain.parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=0)


def test_tied_embeddings_and_init():
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    std = model.transformer.h[0].attn.q_proj.weight.std().item()
    residual_std = model.transformer.h[0].attn.o_proj.weight.std().item()
    assert 0.017 < std < 0.023
    assert residual_std == pytest.approx(0.02 / (2 * 2) ** 0.5, rel=0.15)


def test_save_pretrained_round_trip_is_bit_exact(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, GPTForCausalLM)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_auto_classes_are_registered():
    config = AutoConfig.for_model("toolkit_gpt", vocab_size=VOCAB, hidden_size=64, num_attention_heads=4)
    assert isinstance(config, GPTConfig)
    assert isinstance(AutoModel.from_config(config), GPTModel)
    assert isinstance(AutoModelForCausalLM.from_config(config), GPTForCausalLM)
    assert isinstance(AutoModelForSequenceClassification.from_config(config), GPTForSequenceClassification)


def test_remote_code_loads_without_toolkit(tmp_path, python_without_toolkit):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_gpt.py").exists() and (tmp_path / "configuration_gpt.py").exists()
    auto_map = AutoConfig.from_pretrained(tmp_path).auto_map
    assert auto_map["AutoModelForCausalLM"] == "modeling_gpt.GPTForCausalLM"

    x = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(10))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(x).logits, tmp_path / "expected.pt")
    script = (
        "import sys, torch\n"
        "try:\n    import toolkit\nexcept ImportError:\n    pass\nelse:\n    sys.exit('toolkit importable')\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()\n"
        "assert type(m).__module__.startswith('transformers_modules'), type(m).__module__\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        f"expected = torch.load({str(tmp_path / 'expected.pt')!r})\n"
        "with torch.no_grad():\n    assert torch.equal(m(x).logits, expected)\n"
        "out = m.generate(x[:1], max_new_tokens=5, do_sample=False, pad_token_id=0)\n"
        "print('OK', out.shape[1])\n"
    )
    python, env = python_without_toolkit
    result = subprocess.run([*python, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK 15" in result.stdout


def test_lora_on_q_and_v_trains_only_adapters():
    model = tiny_model().train()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert sum("q_proj" in n for n in trainable) == sum("v_proj" in n for n in trainable) == 4

    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, VOCAB, (4, 16), generator=torch.Generator().manual_seed(11))
    for _ in range(3):
        peft_model(input_ids=x, labels=x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, param in peft_model.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        if name in trainable and "lora_B" in name:
            assert changed, name
        if name not in trainable:
            assert not changed, name


def test_sequence_classification_scores_last_real_token():
    torch.manual_seed(0)
    model = GPTForSequenceClassification(tiny_config(num_labels=1, pad_token_id=0)).eval()
    x = torch.randint(1, VOCAB, (1, 7), generator=torch.Generator().manual_seed(12))
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones(1, 7, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        alone = model(x).logits
        right = model(torch.cat([x, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
        left = model(torch.cat([pad, x], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
        by_pad_id = model(torch.cat([x, pad], 1)).logits
    assert alone.shape == (1, 1)
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(left, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(by_pad_id, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("preset", "parameters"),
    [("small", 124_439_808), ("medium", 354_823_168), ("large", 774_030_080), ("xl", 1_557_611_200)],
)
def test_gpt2_presets_have_exact_parameter_counts(preset, parameters):
    with torch.device("meta"):
        model = GPTForCausalLM(GPTConfig.from_preset(preset))
    assert model.num_parameters() == parameters


def test_tiny_preset_builds():
    assert "tiny" in PRESETS
    model = GPTForCausalLM(GPTConfig.from_preset("tiny"))
    assert model.config.num_hidden_layers == 2


def test_sequence_longer_than_context_names_the_fix():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"129 tokens .* max_position_embeddings=128.*truncation=True"):
        model(torch.zeros(1, 129, dtype=torch.long))


def test_generation_past_context_names_the_fix():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_position_embeddings=128"):
        model.generate(torch.ones(1, 120, dtype=torch.long), max_new_tokens=20, do_sample=False, pad_token_id=0)


def test_heads_not_dividing_width_names_the_fix_when_the_model_is_built():
    config = GPTConfig(hidden_size=64, num_attention_heads=5)  # a config holds any shape, as GPT2Config does
    for model_class in (GPTModel, GPTForCausalLM, GPTForSequenceClassification):
        with pytest.raises(ValueError, match=r"num_attention_heads=5 does not divide hidden_size=64.*\[1, 2, 4, 8"):
            model_class(config)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="Unknown preset 'gigantic'. Available presets: tiny, small, medium"):
        GPTConfig.from_preset("gigantic")
