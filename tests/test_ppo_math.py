"""PPO math against values worked out by hand: masked statistics, whitening, KL estimators, rewards, GAE, clipped
losses, entropy, KL controllers."""

import math

import pytest
import torch

from toolkit.rlhf.ppo.ppo_core import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    compute_rewards,
    entropy_from_logits,
    kl_penalty,
    last_token_index,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
)


def close(actual: torch.Tensor, expected, atol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_masked_mean_and_var():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # Unmasked values: 1, 2, 4. Mean 7/3; squared deviations 16/9, 1/9, 25/9 -> biased variance 14/9,
    # unbiased 14/9 * 3/2 = 7/3.
    close(masked_mean(values, mask), 7 / 3)
    close(masked_mean(values, mask, dim=1), [1.5, 4.0])
    close(masked_var(values, mask, unbiased=False), 14 / 9)
    close(masked_var(values, mask), 7 / 3)


def test_unbiased_variance_of_one_value_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(torch.tensor([[3.0, 9.0]]), torch.tensor([[1, 0]]))


def test_whiten_with_and_without_mean_shift():
    values = torch.tensor([[1.0, 3.0, 5.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # Mean 3, unbiased variance (4 + 0 + 4) / 2 = 4, std 2: (x - 3) / 2 = -1, 0, 1; padding -> 0.
    close(masked_whiten(values, mask), [[-1.0, 0.0, 1.0, 0.0]], atol=1e-5)
    # Without the shift the mean (3) is added back: 2, 3, 4.
    close(masked_whiten(values, mask, shift_mean=False), [[2.0, 3.0, 4.0, 0.0]], atol=1e-5)


def test_kl_estimators():
    # Token 1: p = 0.5, p_ref = 0.25 -> r = 0.5; token 2: p = 0.2, p_ref = 0.4 -> r = 2.
    logprobs = torch.log(torch.tensor([[0.5, 0.2]]))
    ref_logprobs = torch.log(torch.tensor([[0.25, 0.4]]))
    # k1 = logp - logp_ref = log 2, log 0.5 (negative: k1 is only right on average).
    close(kl_penalty(logprobs, ref_logprobs, "k1"), [[math.log(2), -math.log(2)]])
    # k3 = (r - 1) - log r = -0.5 + log 2 = 0.19315, 1 - log 2 = 0.30685 (never negative).
    close(kl_penalty(logprobs, ref_logprobs, "k3"), [[0.193147, 0.306853]], atol=1e-5)
    with pytest.raises(ValueError, match="k1"):
        kl_penalty(logprobs, ref_logprobs, "k2")


def test_rewards_put_the_score_on_the_last_real_token():
    scores = torch.tensor([2.0, -1.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert last_token_index(mask).tolist() == [2, 1]
    rewards, non_score = compute_rewards(scores, kl, mask, kl_coef=0.5)
    # -0.5 * KL per real token (padding 0), + score at index 2 (row 0) and index 1 (row 1).
    close(non_score, [[-0.05, -0.1, -0.15], [-0.2, -0.25, 0.0]])
    close(rewards, [[-0.05, -0.1, 1.85], [-0.2, -1.25, 0.0]])


def test_gae_by_hand_with_padding():
    rewards = torch.tensor([[0.1, -0.2, 1.0, 5.0]])  # the last column is padding: ignored
    values = torch.tensor([[0.5, 0.4, 0.6, 9.9]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # gamma = 1, lambda = 0.5; the value after the last real token is 0.
    # t=2: delta = 1.0 + 0 - 0.6 = 0.4;      A2 = 0.4
    # t=1: delta = -0.2 + 0.6 - 0.4 = 0.0;   A1 = 0.0 + 0.5 * 0.4 = 0.2
    # t=0: delta = 0.1 + 0.4 - 0.5 = 0.0;    A0 = 0.0 + 0.5 * 0.2 = 0.1
    # returns = A + V = 0.6, 0.6, 1.0; padding 0.
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    close(advantages, [[0.1, 0.2, 0.4, 0.0]])
    close(returns, [[0.6, 0.6, 1.0, 0.0]])


def test_gae_by_hand_with_discount():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.8]])
    mask = torch.ones(1, 3)
    # gamma = 0.9, lambda = 0.8, gamma * lambda = 0.72.
    # t=2: delta = 1 + 0 - 0.8 = 0.2;             A2 = 0.2
    # t=1: delta = 0 + 0.9 * 0.8 - 0.5 = 0.22;    A1 = 0.22 + 0.72 * 0.2 = 0.364
    # t=0: delta = 0 + 0.9 * 0.5 - 0.2 = 0.25;    A0 = 0.25 + 0.72 * 0.364 = 0.51208
    advantages, returns = compute_gae(rewards, values, mask, gamma=0.9, lam=0.8)
    close(advantages, [[0.51208, 0.364, 0.2]])
    close(returns, [[0.71208, 0.864, 1.0]])


def test_gae_with_lambda_one_is_return_minus_value():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    masked_rewards = rewards * mask
    reward_to_go = masked_rewards.flip(1).cumsum(1).flip(1) * mask  # sum of the rewards from t to the end
    close(returns, reward_to_go, atol=1e-5)
    close(advantages, (reward_to_go - values) * mask, atol=1e-5)


def test_clipped_policy_loss_by_hand():
    ratio = torch.tensor([[1.5, 0.5, 1.1, 1.0, 0.5, 7.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, 2.0, -1.0, 3.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])  # the last token is padding
    old_logprobs = torch.full_like(ratio, -2.0)
    logprobs = old_logprobs + ratio.log()
    # cliprange 0.2, per token max(-A * ratio, -A * clip(ratio, 0.8, 1.2)):
    #   1.5, A=1:  max(-1.5, -1.2) = -1.2  clipped term active
    #   0.5, A=1:  max(-0.5, -0.8) = -0.5
    #   1.1, A=-1: max(1.1, 1.1)   =  1.1  (inside the range)
    #   1.0, A=2:  max(-2, -2)     = -2.0
    #   0.5, A=-1: max(0.5, 0.8)   =  0.8  clipped term active
    # loss = (-1.2 - 0.5 + 1.1 - 2.0 + 0.8) / 5 = -0.36; clip fraction 2/5.
    # approx KL = 0.5 * mean(log(ratio)^2) = 0.5 * (0.164402 + 0.480453 + 0.009084 + 0 + 0.480453) / 5 = 0.113439.
    output = clipped_policy_loss(logprobs, old_logprobs, advantages, mask, cliprange=0.2)
    close(output.loss, -0.36, atol=1e-5)
    close(output.clip_fraction, 0.4)
    close(output.approx_kl, 0.113439, atol=1e-5)


def test_policy_loss_gradient_is_zero_where_clipped():
    old_logprobs = torch.zeros(1, 2)
    logprobs = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()
    output = clipped_policy_loss(logprobs, old_logprobs, torch.ones(1, 2), torch.ones(1, 2), cliprange=0.2)
    output.loss.backward()
    # Token 0 is clipped (ratio 1.5 > 1.2 with A > 0): no gradient. Token 1: d(-ratio / 2)/dlogp = -1.1 / 2.
    close(logprobs.grad, [[0.0, -0.55]])


def test_clipped_value_loss_by_hand():
    old_values = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, -0.1, 1.3, 4.0]])
    returns = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # cliprange_value 0.2: clipped values 0.2, -0.1, 1.2.
    #   errors (unclipped, clipped): (0.25, 0.64) -> 0.64 clipped larger; (0.01, 0.01) -> 0.01; (0.09, 0.04) -> 0.09
    # loss = 0.5 * (0.64 + 0.01 + 0.09) / 3 = 0.123333; clip fraction 1/3.
    output = clipped_value_loss(values, old_values, returns, mask, cliprange_value=0.2)
    close(output.loss, 0.74 / 6, atol=1e-6)
    close(output.clip_fraction, 1 / 3)


def test_entropy_and_logprobs_from_logits():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    # -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2; uniform over 3 -> ln 3.
    close(entropy_from_logits(logits), [[1.5 * math.log(2), math.log(3)]], atol=1e-5)
    close(logprobs_from_logits(logits + 7.0, torch.tensor([[1, 2]])), [[math.log(0.25), math.log(1 / 3)]], atol=1e-5)


def test_adaptive_kl_controller():
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    # KL 9: error 9/6 - 1 = 0.5, clipped to 0.2 -> beta = 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512.
    controller.update(9.0, n_steps=256)
    assert controller.value == pytest.approx(0.100512, abs=1e-12)
    # KL 5.4: error -0.1 -> beta *= 1 - 0.1 * 1000 / 10000 = 0.99.
    controller.update(5.4, n_steps=1000)
    assert controller.value == pytest.approx(0.100512 * 0.99, abs=1e-12)
    restored = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    restored.load_state_dict(controller.state_dict())
    assert restored.value == controller.value


def test_fixed_kl_controller_never_moves():
    controller = FixedKLController(0.05)
    controller.update(100.0, n_steps=10**6)
    assert controller.value == 0.05
