"""Weights between transformers' `GPT2LMHeadModel` and our `GPTForCausalLM`.

GPT-2 stores its linear layers as `Conv1D` with weights shaped (in, out) and fuses q, k, v into one `c_attn`;
ours are `nn.Linear` (out, in) with separate `q_proj`, `k_proj`, `v_proj`. Everything else maps one to one.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from .configuration_gpt import GPTConfig
from .modeling_gpt import GPTForCausalLM


def gpt2_config_to_gpt(config: GPT2Config, **overrides) -> GPTConfig:
    """Our config with the same shape and numerics as a GPT-2 config."""
    if config.scale_attn_by_inverse_layer_idx or config.reorder_and_upcast_attn or not config.scale_attn_weights:
        raise ValueError(
            "This GPT-2 config changes attention scaling (scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn "
            "or scale_attn_weights=False); our GPT implements standard GPT-2 attention only."
        )
    if config.add_cross_attention:
        raise ValueError("GPT-2 configs with cross-attention cannot be converted: our GPT is decoder-only.")
    fields = dict(
        vocab_size=config.vocab_size,
        max_position_embeddings=config.n_positions,
        hidden_size=config.n_embd,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        intermediate_size=config.n_inner,
        hidden_act=config.activation_function,
        dropout=config.resid_pdrop,
        attention_dropout=config.attn_pdrop,
        bias=True,
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=True,
    )
    return GPTConfig(**{**fields, **overrides})


def gpt_config_to_gpt2(config: GPTConfig) -> GPT2Config:
    """A GPT-2 config with the same shape and numerics as our config."""
    if not config.bias:
        raise ValueError("GPT-2 has biases everywhere; a GPT built with bias=False cannot be converted to GPT-2.")
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.max_position_embeddings,
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        activation_function=config.hidden_act,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.attention_dropout,
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def _gpt2_state_to_gpt(sd: dict, n_layer: int) -> dict:
    out = {
        "transformer.wte.weight": sd["transformer.wte.weight"],
        "transformer.wpe.weight": sd["transformer.wpe.weight"],
        "transformer.ln_f.weight": sd["transformer.ln_f.weight"],
        "transformer.ln_f.bias": sd["transformer.ln_f.bias"],
    }
    for i in range(n_layer):
        src, dst = f"transformer.h.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[dst + f"{ln}.weight"] = sd[src + f"{ln}.weight"]
            out[dst + f"{ln}.bias"] = sd[src + f"{ln}.bias"]
        q_w, k_w, v_w = sd[src + "attn.c_attn.weight"].t().chunk(3, dim=0)  # Conv1D (C, 3C) -> 3 x (C, C)
        q_b, k_b, v_b = sd[src + "attn.c_attn.bias"].chunk(3, dim=0)
        for name, w, b in (("q_proj", q_w, q_b), ("k_proj", k_w, k_b), ("v_proj", v_w, v_b)):
            out[dst + f"attn.{name}.weight"] = w
            out[dst + f"attn.{name}.bias"] = b
        out[dst + "attn.o_proj.weight"] = sd[src + "attn.c_proj.weight"].t()
        out[dst + "attn.o_proj.bias"] = sd[src + "attn.c_proj.bias"]
        out[dst + "mlp.up_proj.weight"] = sd[src + "mlp.c_fc.weight"].t()
        out[dst + "mlp.up_proj.bias"] = sd[src + "mlp.c_fc.bias"]
        out[dst + "mlp.down_proj.weight"] = sd[src + "mlp.c_proj.weight"].t()
        out[dst + "mlp.down_proj.bias"] = sd[src + "mlp.c_proj.bias"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def _gpt_state_to_gpt2(sd: dict, n_layer: int) -> dict:
    out = {k: sd[k] for k in ("transformer.wte.weight", "transformer.wpe.weight")}
    out["transformer.ln_f.weight"] = sd["transformer.ln_f.weight"]
    out["transformer.ln_f.bias"] = sd["transformer.ln_f.bias"]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[p + f"{ln}.weight"] = sd[p + f"{ln}.weight"]
            out[p + f"{ln}.bias"] = sd[p + f"{ln}.bias"]
        qkv_w = torch.cat([sd[p + f"attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")], dim=0)
        out[p + "attn.c_attn.weight"] = qkv_w.t()
        out[p + "attn.c_attn.bias"] = torch.cat([sd[p + f"attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
        out[p + "attn.c_proj.weight"] = sd[p + "attn.o_proj.weight"].t()
        out[p + "attn.c_proj.bias"] = sd[p + "attn.o_proj.bias"]
        out[p + "mlp.c_fc.weight"] = sd[p + "mlp.up_proj.weight"].t()
        out[p + "mlp.c_fc.bias"] = sd[p + "mlp.up_proj.bias"]
        out[p + "mlp.c_proj.weight"] = sd[p + "mlp.down_proj.weight"].t()
        out[p + "mlp.c_proj.bias"] = sd[p + "mlp.down_proj.bias"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def _load_exact(model, state: dict):
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The LM head is tied to the token embedding, so it is the only key allowed to be absent.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"Weight conversion mismatch: missing {missing}, unexpected {unexpected}.")
    model.tie_weights()
    return model


def gpt2_to_gpt(gpt2: GPT2LMHeadModel, **config_overrides) -> GPTForCausalLM:
    """A `GPTForCausalLM` holding exactly the weights of `gpt2` (same dtype, on CPU)."""
    config = gpt2_config_to_gpt(gpt2.config, **config_overrides)
    model = GPTForCausalLM(config).to(gpt2.dtype)
    state = _gpt2_state_to_gpt({k: v.detach().cpu() for k, v in gpt2.state_dict().items()}, config.num_hidden_layers)
    return _load_exact(model, state).eval() if not gpt2.training else _load_exact(model, state)


def gpt_to_gpt2(model: GPTForCausalLM) -> GPT2LMHeadModel:
    """A `GPT2LMHeadModel` holding exactly the weights of our `model`."""
    gpt2 = GPT2LMHeadModel(gpt_config_to_gpt2(model.config)).to(model.dtype)
    state = _gpt_state_to_gpt2({k: v.detach().cpu() for k, v in model.state_dict().items()}, model.config.n_layer)
    return _load_exact(gpt2, state).eval() if not model.training else _load_exact(gpt2, state)


def load_gpt2_as_gpt(name_or_path: str = "openai-community/gpt2", **kwargs) -> GPTForCausalLM:
    """Start our architecture from pretrained GPT-2: a Hub id (`openai-community/gpt2`) or a local folder."""
    return gpt2_to_gpt(GPT2LMHeadModel.from_pretrained(name_or_path, **kwargs))
