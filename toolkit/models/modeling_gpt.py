"""A GPT in one file, in the spirit of nanoGPT, as a transformers `PreTrainedModel`.

Shapes: B = batch, T = new tokens this call, S = all tokens attended to (cached + new), C = hidden size,
H = heads, D = C // H. Attention runs through transformers' attention interface (`eager`, `sdpa`, ...), the KV
cache is a transformers `Cache`, masks come from `transformers.masking_utils`, so `generate`, PEFT, Trainer and
accelerate treat this model like any model from the Hub.

This file is copied next to a saved model (`auto_map`): import only from torch, transformers and `.configuration_gpt`.
"""

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_gpt import GPTConfig


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    # query (B, H, T, D), key/value (B, H, S, D), attention_mask additive (B, 1, T, S) or None
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (B, H, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value)  # (B, H, T, D)
    return out.transpose(1, 2).contiguous(), probs  # (B, T, H, D)


# Decoding layout. CPU BLAS multiplies one or two rows by an (in, out) weight faster than by nn.Linear's (out, in)
# one, and four or more rows slower (measured with MKL here, GPT-2 small, one thread, per token: the blocks 19 vs 24 ms
# at one row, 47 vs 41 ms at eight; the tied LM head 6 vs 12 ms at one row, equal from four). GPT-2's Conv1D keeps
# (in, out). `generate` decoding one or two rows multiplies by such copies (`laid_out_for_decoding`); the parameters
# keep nn.Linear's layout for training, PEFT and checkpoints.


def is_plain_linear(layer: nn.Module) -> bool:
    """An nn.Linear whose weight is all here (not a PEFT layer, not a DeepSpeed ZeRO-3 shard gathered per call)."""
    return type(layer) is nn.Linear and not hasattr(layer.weight, "ds_id")


def laid_out(layers: list[nn.Linear], buffer: tuple | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layers' weights side by side as one (in, sum of out) weight, with their biases: on CPU copied from the live
    weights into `buffer` when it fits (warm memory, no new pages), else into new memory; elsewhere a transposed view,
    free."""
    weight = layers[0].weight
    biases = [layer.bias for layer in layers]
    bias = None if biases[0] is None else biases[0] if len(biases) == 1 else torch.cat(biases)
    if weight.device.type != "cpu":
        return (weight if len(layers) == 1 else torch.cat([layer.weight for layer in layers])).t(), bias
    shape = (weight.shape[1], sum(layer.out_features for layer in layers))
    fits = buffer is not None and buffer[0].shape == shape and buffer[0].dtype == weight.dtype
    copy = buffer[0] if fits else torch.empty(shape, dtype=weight.dtype)
    column = 0
    for layer in layers:
        copy[:, column : column + layer.out_features].copy_(layer.weight.t())
        column += layer.out_features
    return copy, bias


def decoding_linear(x: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    """x (..., in) @ weight (in, out) + bias: what nn.Linear computes, from the decoding layout."""
    weight, bias = weights
    flat = x.reshape(-1, x.shape[-1])
    out = torch.addmm(bias, flat, weight) if bias is not None else flat @ weight
    return out.view(*x.shape[:-1], weight.shape[1])


class DecodingLayout:
    """A module whose plain Linear weights `generate` reads in the decoding layout.

    `decoding` holds the laid-out weights inside a `generate` call only, filled from the live weights at its start,
    so no optimizer step or in-place edit can leave them stale. On CPU their memory stays allocated between calls
    (`decoding_buffers`) while the model is in eval mode: refilling warm memory costs less than half of faulting new
    pages in (GPT-2 small: 150 vs 390 ms). `train()` releases it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoding: dict[str, tuple] = {}
        self.decoding_buffers: dict[str, tuple] = {}

    def decoding_sources(self) -> dict[str, list[nn.Linear]]:
        """Name -> the plain Linear layers multiplied together as one weight in the decoding layout."""
        raise NotImplementedError

    def lay_out_for_decoding(self) -> None:
        sources = self.decoding_sources().items()
        self.decoding = {name: laid_out(layers, self.decoding_buffers.get(name)) for name, layers in sources}
        self.decoding_buffers = {name: pair for name, pair in self.decoding.items() if pair[0].device.type == "cpu"}

    def train(self, mode: bool = True):
        if mode:
            self.decoding_buffers = {}
        return super().train(mode)


class GPTAttention(DecodingLayout, nn.Module):
    """Multi-head causal self-attention with separate q/k/v/o projections (LoRA targets `q_proj`, `v_proj`)."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True  # read by the sdpa / flash backends
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.o_proj.is_residual_projection = True
        self.resid_dropout = nn.Dropout(config.dropout)

    def project_qkv(self, hidden_states):
        """q, k, v (B, T, C) each. Training runs the three plain Linear projections as one matmul on their
        concatenated weights, as GPT-2's fused c_attn does, so the gradient reaches each; `generate` runs one matmul
        on their fused decoding layout; otherwise (PEFT layers, ZeRO-3 shards, evaluation) each runs on its own,
        since concatenating would copy every weight matrix per call."""
        if "qkv" in self.decoding:
            return decoding_linear(hidden_states, self.decoding["qkv"]).split(self.q_proj.out_features, dim=-1)
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if not (torch.is_grad_enabled() and all(is_plain_linear(p) and p.weight.requires_grad for p in projections)):
            return tuple(p(hidden_states) for p in projections)
        weight = torch.cat([p.weight for p in projections])  # (3C, C)
        bias = torch.cat([p.bias for p in projections]) if self.q_proj.bias is not None else None
        return nn.functional.linear(hidden_states, weight, bias).split(self.q_proj.out_features, dim=-1)

    def decoding_sources(self) -> dict[str, list[nn.Linear]]:
        qkv = [self.q_proj, self.k_proj, self.v_proj]
        sources = {"qkv": qkv} if all(is_plain_linear(p) for p in qkv) else {}
        return sources | ({"o_proj": [self.o_proj]} if is_plain_linear(self.o_proj) else {})

    def forward(self, hidden_states, attention_mask=None, cache: Cache | None = None, **kwargs):
        B, T, C = hidden_states.shape
        heads = (B, T, self.num_heads, self.head_dim)
        q, k, v = (x.view(heads).transpose(1, 2) for x in self.project_qkv(hidden_states))  # 3 x (B, H, T, D)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, H, S, D): cached keys/values followed by the new ones

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        out, weights = attention_interface(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        out = out.reshape(B, T, -1)  # (B, T, C)
        out = decoding_linear(out, self.decoding["o_proj"]) if "o_proj" in self.decoding else self.o_proj(out)
        return self.resid_dropout(out), weights


class GPTMLP(DecodingLayout, nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.bias)
        # gelu_new is GPT-2's tanh approximation written out in Python; PyTorch's tanh GELU is the same function in
        # one fused kernel (equal to ~1e-7), and much faster.
        self.act = ACT2FN["gelu_pytorch_tanh" if config.hidden_act == "gelu_new" else config.hidden_act]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)
        self.down_proj.is_residual_projection = True
        self.dropout = nn.Dropout(config.dropout)

    def decoding_sources(self) -> dict[str, list[nn.Linear]]:
        layers = {"up_proj": self.up_proj, "down_proj": self.down_proj}
        return {name: [layer] for name, layer in layers.items() if is_plain_linear(layer)}

    def project(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return decoding_linear(x, self.decoding[name]) if name in self.decoding else getattr(self, name)(x)

    def forward(self, x):  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return self.dropout(self.project("down_proj", self.act(self.project("up_proj", x))))


class GPTBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm decoder block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = GPTAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = GPTMLP(config)

    def forward(self, hidden_states, attention_mask=None, cache: Cache | None = None, **kwargs):
        attn_out, _ = self.attn(self.ln_1(hidden_states), attention_mask=attention_mask, cache=cache, **kwargs)
        hidden_states = hidden_states + attn_out
        return hidden_states + self.mlp(self.ln_2(hidden_states))


@contextmanager
def laid_out_for_decoding(model: nn.Module):
    """For one `generate` call, while no weight can change: each block's plain Linear weights (q/k/v fused) and the
    LM head in the decoding layout, made once from the live weights and used for every token. On CPU that is a copy
    of those weights (GPT-2 small: ~0.5 GB in float32), kept for the next call until `train()`."""
    modules = [m for m in model.modules() if isinstance(m, DecodingLayout)]
    with torch.no_grad():
        for module in modules:
            module.lay_out_for_decoding()
    try:
        yield
    finally:
        for module in modules:
            module.decoding = {}


# Rows decoded together up to which the decoding layout pays (see "Decoding layout" above), and the fewest new tokens
# for which it does: laying the weights out costs about as much as decoding a dozen to thirty tokens of one row (GPT-2
# small, one thread: 150 ms into warm memory, 390 ms into new, against 11 ms saved a token).
DECODING_LAYOUT_MAX_ROWS = 2
DECODING_LAYOUT_MIN_NEW_TOKENS = 32
GENERATION_SIZES = ("num_beams", "num_return_sequences", "max_new_tokens", "max_length")


class GPTPreTrainedModel(PreTrainedModel):
    config_class = GPTConfig
    config: GPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPTBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # output_hidden_states / output_attentions are recorded by transformers' hooks: each block's output (after the
    # embeddings, the block input) and each attention's weights (eager only; sdpa and flash return none).
    _can_record_outputs = {"hidden_states": GPTBlock, "attentions": GPTAttention}

    def __init__(self, config: GPTConfig, *inputs, **kwargs):
        config.check_shape()  # the config accepts any shape, as GPT2Config does; the model says what cannot be built
        super().__init__(config, *inputs, **kwargs)

    def _init_weights(self, module):
        """GPT-2 init: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 * n_layer).

        Decided per Linear layer: transformers skips `_init_weights` on remote-code modules that hold no
        parameters of their own (the attention and MLP containers)."""
        super()._init_weights(module)
        if getattr(module, "is_residual_projection", False):
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)


class GPTModel(GPTPreTrainedModel):
    """The decoder stack without a head: token + position embeddings, blocks, final LayerNorm."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([GPTBlock(config, i) for i in range(config.num_hidden_layers)])
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon, bias=config.bias)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def set_input_embeddings(self, new_embeddings):
        self.wte = new_embeddings

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """`output_hidden_states`, `output_attentions` and `return_dict` (arguments or config) work as in any
        transformers model; `hidden_states` has num_hidden_layers + 1 entries, the last after the final LayerNorm."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, C)
        B, T, _ = inputs_embeds.shape
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        past = cache.get_seq_length() if cache is not None else 0
        if past + T > self.config.max_position_embeddings:
            raise ValueError(
                f"The input has {past + T} tokens ({past} cached + {T} new) but this model's context is "
                f"max_position_embeddings={self.config.max_position_embeddings}. Truncate the input "
                f"(tokenizer(..., truncation=True, max_length={self.config.max_position_embeddings})), generate fewer "
                "new tokens, or evaluate with a sliding window."
            )
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # Count only real tokens, so a left-padded row gets the same positions as the row alone.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
        elif position_ids is None:
            position_ids = torch.arange(past, past + T, device=inputs_embeds.device).unsqueeze(0)  # (1, T)

        hidden_states = self.drop(inputs_embeds + self.wpe(position_ids))  # (B, T, C)
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )  # None (pure causal, left to the backend), or (B, 1, T, S)

        for block in self.h:
            hidden_states = block(hidden_states, attention_mask=mask, cache=cache, position_ids=position_ids, **kwargs)
        return BaseModelOutputWithPast(last_hidden_state=self.ln_f(hidden_states), cache=cache if use_cache else None)


class GPTForCausalLM(DecodingLayout, GPTPreTrainedModel, GenerationMixin):
    """GPT with a language-modeling head tied to the token embedding."""

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.transformer = GPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def decoding_sources(self) -> dict[str, list[nn.Linear]]:
        return {"lm_head": [self.lm_head]} if is_plain_linear(self.lm_head) else {}

    def generate(self, *args, **kwargs):
        """transformers' `generate`; decoding one or two rows for at least `DECODING_LAYOUT_MIN_NEW_TOKENS` new tokens
        runs on weights laid out for it once per call (`laid_out_for_decoding`)."""
        inputs = args[0] if args and torch.is_tensor(args[0]) else kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        if inputs is None or not self.decoding_layout_pays(inputs, kwargs):
            return super().generate(*args, **kwargs)
        with laid_out_for_decoding(self):
            return super().generate(*args, **kwargs)

    def decoding_layout_pays(self, inputs: torch.Tensor, kwargs: dict) -> bool:
        """Whether a `generate` call on `inputs` with `kwargs` decodes few enough rows for long enough."""
        config = kwargs.get("generation_config") or self.generation_config
        options = {name: kwargs.get(name, getattr(config, name)) for name in GENERATION_SIZES}
        rows = inputs.shape[0] * max(options["num_beams"] or 1, options["num_return_sequences"] or 1)
        new_tokens = options["max_new_tokens"]
        if new_tokens is None:
            new_tokens = options["max_length"] - inputs.shape[1]
        return rows <= DECODING_LAYOUT_MAX_ROWS and new_tokens >= DECODING_LAYOUT_MIN_NEW_TOKENS

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`labels` are the input ids (shifted inside); -100 is ignored. `num_items_in_batch` in kwargs makes the
        loss a sum over that many tokens, so gradient accumulation equals one big batch."""
        outputs: BaseModelOutputWithPast = self.transformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, C)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        kept = hidden_states[:, keep, :]
        logits = decoding_linear(kept, self.decoding["lm_head"]) if self.decoding else self.lm_head(kept)  # (B, T', V)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class GPTForSequenceClassification(GPTPreTrainedModel):
    """GPT with a linear score head read at the last real token (reward models use num_labels=1)."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = GPTModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def last_token_index(self, input_ids, attention_mask, length):
        """Index of the last real token per row: from the attention mask (any padding side), else pad_token_id."""
        positions = torch.arange(length)
        if attention_mask is not None:
            positions = positions.to(attention_mask.device)
            return (positions * attention_mask.to(torch.long)).argmax(-1)
        if input_ids is not None and self.config.pad_token_id is not None:
            positions = positions.to(input_ids.device)
            return (positions * (input_ids != self.config.pad_token_id).to(torch.long)).argmax(-1)
        return torch.full((1,), length - 1, dtype=torch.long)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """The loss follows `config.problem_type` as GPT-2's does (unset: regression for one label, single-label for
        integer labels, else multi-label). Scoring keeps no KV cache unless `use_cache=True` or a `cache` is given
        (a reward model scores whole texts; its training needs none)."""
        outputs: BaseModelOutputWithPast = self.transformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=bool(use_cache) or cache is not None,
            return_dict=True,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (B, T, num_labels)
        B, T = logits.shape[:2]
        last = self.last_token_index(input_ids, attention_mask, T).to(logits.device)
        pooled = logits[torch.arange(B, device=logits.device), last]  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=pooled, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = ["GPTPreTrainedModel", "GPTModel", "GPTForCausalLM", "GPTForSequenceClassification"]
