"""The models PPO runs: policy logits over query + response, per-token values, reward scores.

Shapes: B = batch, L = query + response tokens, Q = query tokens (left-padded), R = response tokens (right-padded),
C = hidden size, V = vocabulary.

Every forward pass here takes an explicit attention mask and derives the position ids from it, so a left-padded query
gets the same positions as the query alone. GPT-2 does not derive positions from the mask by itself; our GPT does,
and passing them explicitly is harmless there.
"""

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .ppo.ppo_core import last_token_index


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) mask -> (B, L) positions counting real tokens only: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT model (LoRA layers stay injected in it), else the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_peft_model(model: nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def backbone_hidden_states(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states of a model's decoder (`base_model_prefix`, e.g. `transformer`): (B, L) -> (B, L, C)."""
    base = unwrap_peft(model)
    backbone = getattr(base, base.base_model_prefix)
    outputs = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    return outputs.last_hidden_state


def response_hidden_and_logits(
    causal_lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, query_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and logits at the R positions that predict the response tokens input_ids[:, Q:].

    (B, L) -> hidden (B, R, C), logits (B, R, V). Only those positions go through the LM head, so the full (B, L, V)
    logits are never built. The head is the model's output embedding: models whose LM head does more than a linear
    map (logit soft-capping) are not supported.
    """
    hidden = backbone_hidden_states(causal_lm, input_ids, attention_mask)  # (B, L, C)
    response_hidden = hidden[:, query_length - 1 : -1]  # (B, R, C): position t predicts token t + 1
    logits = unwrap_peft(causal_lm).get_output_embeddings()(response_hidden)  # (B, R, V)
    return response_hidden, logits


def enable_activation_checkpointing(model: torch.nn.Module, kwargs: dict | None) -> None:
    """Recompute activations in the backward pass (less memory); a PEFT model's inputs must then carry gradients."""
    unwrap_peft(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs or {"use_reentrant": False})
    if is_peft_model(model):
        model.enable_input_require_grads()


def disable_dropout(model: nn.Module) -> None:
    """Turn off every dropout: nn.Dropout modules and the attention dropout that attention modules keep as a float
    (our GPT, Llama-style models), which `model.train()` would otherwise switch on."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def score_head(model: nn.Module) -> nn.Module:
    """The `score` head of a sequence-classification model with one label (a reward model)."""
    base = unwrap_peft(model)
    if not hasattr(base, "score"):
        raise ValueError(
            f"{type(base).__name__} has no `score` head. Reward and value models must be sequence-classification "
            "models (AutoModelForSequenceClassification.from_pretrained(path, num_labels=1))."
        )
    if base.config.num_labels != 1:
        raise ValueError(f"Reward and value models need num_labels=1, got num_labels={base.config.num_labels}.")
    return base.score


class TokenValueModel(nn.Module):
    """Per-token scalar outputs of a sequence-classification model: its `score` head applied at every position.

    A reward model pools this at the last real token; as a PPO value model (initialised from the reward model) every
    position gives the value of the response so far.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        score_head(model)  # fail early on a model without a one-label score head
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = backbone_hidden_states(self.model, input_ids, attention_mask)  # (B, L, C)
        return score_head(self.model)(hidden).squeeze(-1).float()  # (B, L)


@torch.no_grad()
def sequence_scores(reward_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A reward model's score for each row, read at the last real token of the mask: (B, L) -> (B,).

    Works for any padding side and does not rely on the pad id (GPT-2 often pads with its EOS token).
    """
    token_scores = TokenValueModel(reward_model)(input_ids, attention_mask)  # (B, L)
    rows = torch.arange(token_scores.shape[0], device=token_scores.device)
    return token_scores[rows, last_token_index(attention_mask)]


class PolicyAndValueModel(nn.Module):
    """The trained models in one module (one optimizer, one `accelerator.prepare`).

    The value function is either a separate sequence-classification model used per token (usually initialised from
    the reward model), or, when `value_model` is None, a zero-initialised linear value head on the policy's own last
    hidden states.
    """

    def __init__(self, policy: nn.Module, value_model: PreTrainedModel | None = None):
        super().__init__()
        self.policy = policy
        self.value_model = TokenValueModel(value_model) if value_model is not None else None
        self.value_head = None
        if value_model is None:
            hidden_size = unwrap_peft(policy).config.get_text_config().hidden_size
            self.value_head = nn.Linear(hidden_size, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, query_length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) query + response -> policy logits (B, R, V) and values (B, R) at the positions before each
        response token."""
        response_hidden, logits = response_hidden_and_logits(self.policy, input_ids, attention_mask, query_length)
        if self.value_head is not None:
            values = self.value_head(response_hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()  # (B, R)
        else:
            values = self.value_model(input_ids, attention_mask)[:, query_length - 1 : -1]  # (B, R)
        return logits, values


def _describe(tokenizer: PreTrainedTokenizerBase) -> str:
    name = tokenizer.name_or_path or "built in memory"
    return f"{type(tokenizer).__name__} ({name!r}, {len(tokenizer)} tokens)"


def check_tokenizers_match(
    policy_tokenizer: PreTrainedTokenizerBase, reward_tokenizer: PreTrainedTokenizerBase, what: str = "reward model"
) -> None:
    """Raise a ValueError when two tokenizers would map text to different ids: the reward model reads the policy's
    token ids as they are, so a different vocabulary scores garbage silently."""
    policy_vocab, reward_vocab = policy_tokenizer.get_vocab(), reward_tokenizer.get_vocab()
    if len(policy_tokenizer) == len(reward_tokenizer) and policy_vocab == reward_vocab:
        return
    differences = sorted(set(policy_vocab.items()) ^ set(reward_vocab.items()), key=lambda item: item[1])[:5]
    raise ValueError(
        f"The {what}'s tokenizer {_describe(reward_tokenizer)} differs from the policy's tokenizer "
        f"{_describe(policy_tokenizer)}; (token, id) pairs in one but not the other: {differences}. The {what} must "
        "use the policy's vocabulary: train it from the same base model or with the same tokenizer."
    )


__all__ = [
    "position_ids_from_mask",
    "unwrap_peft",
    "is_peft_model",
    "backbone_hidden_states",
    "response_hidden_and_logits",
    "disable_dropout",
    "enable_activation_checkpointing",
    "score_head",
    "TokenValueModel",
    "sequence_scores",
    "PolicyAndValueModel",
    "check_tokenizers_match",
]
