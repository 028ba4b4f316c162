"""A batch of PPO rollouts and the tensor operations that make one: left-padded queries, responses cut after their
first EOS, response log-probs at the sampling temperature.

Shapes: B = batch, Q = query tokens, R = response tokens, L = Q + R.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..scoring import response_hidden_and_logits
from .ppo_core import logprobs_from_logits


@dataclass
class Rollout:
    """One batch of rollouts; everything about the responses is 0 (or pad) after the first EOS."""

    prompt_indices: list[int]
    queries: torch.Tensor  # (B, Q) left-padded prompt ids
    query_mask: torch.Tensor  # (B, Q)
    responses: torch.Tensor  # (B, R) sampled ids, pad after the first EOS
    response_mask: torch.Tensor  # (B, R) 1 up to and including the first EOS
    has_eos: torch.Tensor  # (B,) bool
    logprobs: torch.Tensor  # (B, R) policy log-probs at the sampling temperature
    ref_logprobs: torch.Tensor  # (B, R) reference log-probs at the sampling temperature
    values: torch.Tensor  # (B, R) value of each response prefix
    scores: torch.Tensor  # (B,) reward-model or reward-function score (missing-EOS penalty included)

    @property
    def input_ids(self) -> torch.Tensor:  # (B, L)
        return torch.cat([self.queries, self.responses], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # (B, L)
        return torch.cat([self.query_mask, self.response_mask], dim=1)


def left_pad(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> ids (B, Q) and mask (B, Q), padded on the left so every query ends at column Q - 1."""
    width = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            mask[row, width - len(sequence) :] = 1
    return ids, mask


def truncate_after_eos(
    responses: torch.Tensor, eos_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep each response up to and including its first EOS and pad the rest.

    responses (B, R) -> truncated responses (B, R), mask (B, R) (1 on kept tokens), has_eos (B,).
    A response without EOS keeps all R tokens.
    """
    is_eos = responses == eos_token_id  # (B, R)
    has_eos = is_eos.any(dim=1)
    last_kept = torch.where(has_eos, is_eos.long().argmax(dim=1), responses.shape[1] - 1)  # (B,)
    positions = torch.arange(responses.shape[1], device=responses.device)
    mask = (positions[None, :] <= last_kept[:, None]).long()
    return responses.masked_fill(mask == 0, pad_token_id), mask, has_eos


def response_logprobs(
    causal_lm: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    query_length: int,
    temperature: float,
) -> torch.Tensor:
    """log p(response token | query, earlier response tokens) with logits / temperature: (B, L) -> (B, R)."""
    _, logits = response_hidden_and_logits(causal_lm, input_ids, attention_mask, query_length)  # (B, R, V)
    return logprobs_from_logits(logits / temperature, input_ids[:, query_length:])


__all__ = ["Rollout", "left_pad", "response_logprobs", "truncate_after_eos"]
