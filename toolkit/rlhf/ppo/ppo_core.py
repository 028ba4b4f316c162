"""The math of PPO for RLHF, as pure functions over padded response tensors.

Shapes: B = batch, T = response tokens (padded), V = vocabulary. `mask` is 1 on the real response tokens (the stop
token included) and 0 on the padding after them; the real tokens always form a prefix of each row.

References: Ziegler et al. 2019 (KL-penalised reward, adaptive KL), Schulman et al. 2016 (GAE), Schulman et al. 2017
(clipped objectives), Schulman's note "Approximating KL divergence" (k1 / k3), Huang et al. 2023 "The N
Implementation Details of RLHF with PPO".
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

KL_ESTIMATORS = ("k1", "k3")


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() if dim is None else (values * mask).sum(dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1: a scalar, or one value per row of `dim` removed."""
    mask = mask.to(values.dtype)
    return masked_sum(values, mask, dim) / (mask.sum() if dim is None else mask.sum(dim))


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `values` where `mask` is 1 (a scalar); `unbiased` applies Bessel's correction n / (n - 1)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError(
                f"An unbiased variance needs at least 2 unmasked values, got {int(count)}. Use larger batches "
                "(batch_size, mini_batch_size) so whitening sees more than one token."
            )
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Normalise to unit variance over the unmasked values; padding becomes 0.

    With `shift_mean` the result has mean 0 (advantages); without it the original mean is kept, so only the scale
    changes (rewards: shifting them would change which responses look good against the KL penalty).
    """
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under softmax(logits): logits (B, T, V), tokens (B, T) -> (B, T), computed in float32."""
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return torch.gather(log_probs, -1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) in nats: (B, T, V) -> (B, T)."""
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return -(log_probs.exp() * log_probs).sum(-1)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) at tokens sampled from the policy: (B, T), (B, T) -> (B, T).

    With r = p_ref(x) / p(x) = exp(logp_ref - logp):
    - k1 = -log r = logp - logp_ref: unbiased, but single tokens can be negative.
    - k3 = (r - 1) - log r: also unbiased, never negative, lower variance.
    """
    log_ratio = ref_logprobs - logprobs  # log r, (B, T)
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}.")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a (B, T) mask -> (B,); 0 for a row without any."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.long()).argmax(-1)


def compute_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * KL on every response token, plus the sequence score on the last real token.

    scores (B,), kl (B, T), mask (B, T) -> rewards (B, T), non_score_rewards (B, T) (the KL part alone).
    """
    non_score_rewards = -kl_coef * kl * mask
    rewards = non_score_rewards.clone()
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards, non_score_rewards


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the response tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, returns_t = A_t + V_t.
    The value after the last real token is 0 (the episode ends there).
    rewards (B, T), values (B, T), mask (B, T) -> advantages (B, T), returns (B, T), both 0 on padding.
    """
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask  # padding adds nothing and bootstraps from 0
    T = rewards.shape[1]
    next_advantage = torch.zeros_like(rewards[:, 0])  # (B,)
    advantages_reversed = []
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages_reversed.append(next_advantage)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)  # (B, T)
    returns = advantages + values
    return advantages * mask, returns * mask


class PolicyLoss(NamedTuple):
    loss: torch.Tensor  # scalar, to minimise
    clip_fraction: torch.Tensor  # share of tokens where the clipped term was the active one
    approx_kl: torch.Tensor  # 0.5 * mean((logp - logp_old)^2): how far the update moved the policy


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> PolicyLoss:
    """PPO's clipped surrogate: mean over tokens of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)).

    All inputs (B, T); ratio = exp(logprobs - old_logprobs).
    """
    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
    return PolicyLoss(loss, clip_fraction.detach(), approx_kl.detach())


class ValueLoss(NamedTuple):
    loss: torch.Tensor  # scalar, to minimise
    clip_fraction: torch.Tensor  # share of tokens where the clipped prediction gave the larger error


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> ValueLoss:
    """0.5 * mean over tokens of max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, +-eps).

    All inputs (B, T).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return ValueLoss(loss, clip_fraction.detach())


class FixedKLController:
    """A constant KL coefficient beta."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019: move beta so the measured KL tracks `target`.

    beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon), where n_steps is the number of
    episodes behind this KL measurement; the clip bounds how fast beta can move.
    """

    def __init__(self, kl_coef: float, target: float, horizon: int):
        super().__init__(kl_coef)
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


__all__ = [
    "KL_ESTIMATORS",
    "masked_sum",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "logprobs_from_logits",
    "entropy_from_logits",
    "kl_penalty",
    "last_token_index",
    "compute_rewards",
    "compute_gae",
    "PolicyLoss",
    "clipped_policy_loss",
    "ValueLoss",
    "clipped_value_loss",
    "FixedKLController",
    "AdaptiveKLController",
]
