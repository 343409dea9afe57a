"""Tests of gaebook.lm.token_mdp: KL estimators, reward placement, adaptive λ, critic-free advantages."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gaebook import gae, next_valid_values
from gaebook.lm.token_mdp import (
    adaptive_lam,
    grpo_advantages,
    kl_penalty,
    last_valid_index,
    reinforce_pp_advantages,
    rloo_advantages,
    token_rewards,
    truncation_penalty,
)


def prefix_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width) < torch.tensor(lengths).unsqueeze(1)


def test_kl_estimators_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.4)]])
    # k1 = log π − log π_ref
    torch.testing.assert_close(kl_penalty(logp, ref), torch.tensor([[math.log(2.0), math.log(0.5)]]))
    # k3 = (ρ − 1) − log ρ with ρ = π_ref / π: ρ = 0.5 and 2
    k3 = torch.tensor([[-0.5 - math.log(0.5), 1.0 - math.log(2.0)]])
    torch.testing.assert_close(kl_penalty(logp, ref, estimator="k3"), k3)
    # k2 = ½ (log ρ)²
    k2 = torch.tensor([[0.5 * math.log(0.5) ** 2, 0.5 * math.log(2.0) ** 2]])
    torch.testing.assert_close(kl_penalty(logp, ref, estimator="k2"), k2)
    for estimator in ("k1", "k2", "k3"):
        assert (kl_penalty(logp, logp, estimator=estimator) == 0).all()


def test_k1_and_k3_are_unbiased_and_k2_is_not():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    exact = (p * (p / q).log()).sum()
    means = {e: (p * kl_penalty(p.log(), q.log(), estimator=e)).sum() for e in ("k1", "k2", "k3")}  # E_p exactly
    torch.testing.assert_close(means["k1"], exact)
    torch.testing.assert_close(means["k3"], exact)
    assert abs(means["k2"] - exact) > 1e-3, f"E[k2] = {means['k2']:.5f}, KL = {exact:.5f}"


def test_k1_and_k3_are_unbiased_on_samples():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    exact = (p * (p / q).log()).sum()
    draws = torch.multinomial(p, 200_000, replacement=True, generator=g)
    for estimator in ("k1", "k3"):
        estimate = kl_penalty(p.log()[draws], q.log()[draws], estimator=estimator).mean()
        torch.testing.assert_close(estimate, exact, atol=0.01, rtol=0)


@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=6), beta=st.floats(0, 2))
def test_score_lands_on_the_last_valid_token(lengths, beta):
    width = 7
    mask = prefix_mask(lengths, width)
    scores = torch.arange(1.0, len(lengths) + 1)
    kl = torch.linspace(-1, 1, len(lengths) * width).view(len(lengths), width)
    rewards = token_rewards(scores, mask, kl, kl_coef=beta)
    for i, n in enumerate(lengths):
        expected = -beta * kl[i].clone()
        expected[n - 1] += scores[i]
        expected[n:] = 0.0  # nothing after the response, not even the score
        torch.testing.assert_close(rewards[i], expected)
    # with γ = 1 the return of the first token is score − β·ΣKL over the response
    torch.testing.assert_close(rewards.sum(1), scores - beta * (kl * mask).sum(1))


def test_a_tensor_kl_coef_gives_the_rewards_of_the_same_number():
    mask = prefix_mask([2, 3], 3)
    kl = torch.linspace(-1, 1, 6).view(2, 3)
    scores = torch.tensor([1.0, 0.0])
    assert torch.equal(
        token_rewards(scores, mask, kl, kl_coef=torch.tensor(0.3)), token_rewards(scores, mask, kl, kl_coef=0.3)
    )


def test_step_rewards_land_on_their_tokens_and_padding_drops_them():
    mask = prefix_mask([3, 1], 3)
    steps = torch.tensor([[0.5, 0.0, 0.25], [1.0, 7.0, 7.0]])  # the 7s are past the second response's end
    kl = torch.full((2, 3), 0.1)
    rewards = token_rewards(torch.tensor([2.0, -1.0]), mask, kl, kl_coef=0.5, step_rewards=steps)
    torch.testing.assert_close(rewards, torch.tensor([[0.45, -0.05, 2.2], [-0.05, 0.0, 0.0]]))


def test_last_valid_index_of_a_gappy_mask():
    mask = torch.tensor([[True, False, True, False], [False, False, False, False], [True, True, True, True]])
    assert last_valid_index(mask).tolist() == [2, 0, 3]


def test_truncation_penalty():
    scores = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(
        truncation_penalty(scores, torch.tensor([False, True, False]), 0.5), torch.tensor([1.0, -0.5, 0.0])
    )


def test_adaptive_lam_formula():
    lengths = torch.tensor([1, 4, 10, 100])
    torch.testing.assert_close(adaptive_lam(lengths, 0.5), torch.tensor([0.0, 0.5, 0.8, 0.98]))
    # 1/(1 − λ) = α·l: the effective horizon grows with the length
    lam = adaptive_lam(torch.tensor([20.0, 40.0]), 1.0)
    torch.testing.assert_close(1 / (1 - lam), torch.tensor([20.0, 40.0]))
    assert adaptive_lam(torch.tensor([3]), 0.05).item() == 0.0  # clipped at 0


def test_adaptive_lam_feeds_gae_one_lambda_per_sequence():
    mask = prefix_mask([2, 5], 5)
    rewards = token_rewards(torch.tensor([1.0, 1.0]), mask)
    values = torch.zeros(2, 5)
    lam = adaptive_lam(mask.sum(1), 0.5)  # λ = 0 and 0.6
    adv, _ = gae(
        rewards, values, next_valid_values(values, mask), torch.zeros_like(mask), gamma=1.0, lam=lam, mask=mask
    )
    torch.testing.assert_close(adv[0], torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(adv[1], torch.tensor([0.6**4, 0.6**3, 0.6**2, 0.6, 1.0]))


def test_grpo_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # two prompts, three responses each
    # group 1: mean 1/3, unbiased std sqrt(1/3); group 2: all equal
    std = math.sqrt(1 / 3)
    expected = torch.tensor([(2 / 3) / (std + 1e-4), (-1 / 3) / (std + 1e-4), (-1 / 3) / (std + 1e-4), 0, 0, 0])
    torch.testing.assert_close(grpo_advantages(rewards, 3), expected)
    torch.testing.assert_close(grpo_advantages(rewards, 3, scale=False), torch.tensor([2 / 3, -1 / 3, -1 / 3, 0, 0, 0]))


def test_rloo_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.5, 3.0])  # one prompt, four responses
    expected = torch.tensor([1 - 3.5 / 3, 0 - 4.5 / 3, 0.5 - 4 / 3, 3 - 1.5 / 3])
    torch.testing.assert_close(rloo_advantages(rewards, 4), expected)
    torch.testing.assert_close(rloo_advantages(rewards, 4), 4 / 3 * (rewards - rewards.mean()))


def test_reinforce_pp_by_hand():
    mask = prefix_mask([3, 1], 3)
    rewards = torch.tensor([[-0.1, -0.2, 0.7], [2.0, 0.0, 0.0]])
    returns = torch.tensor([0.4, 0.5, 0.7, 2.0])  # the valid returns-to-go, in row order
    expected = torch.zeros(2, 3)
    expected[mask] = (returns - returns.mean()) / (returns.std() + 1e-8)
    torch.testing.assert_close(reinforce_pp_advantages(rewards, mask), expected)


def test_bad_input():
    x = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="estimator must be one of 'k1', 'k2', 'k3'; got 'k4'"):
        kl_penalty(x, x, estimator="k4")
    with pytest.raises(ValueError, match="ref_log_probs has shape"):
        kl_penalty(x, torch.zeros(2, 4))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        token_rewards(torch.zeros(2), mask.float())
    with pytest.raises(ValueError, match="scores has 3 rows"):
        token_rewards(torch.zeros(3), mask)
    with pytest.raises(ValueError, match="kl_coef"):
        token_rewards(torch.zeros(2), mask, x, kl_coef=-1.0)
    with pytest.raises(ValueError, match=r"step_rewards has shape \(2, 4\)"):
        token_rewards(torch.zeros(2), mask, step_rewards=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="step_rewards must be a floating tensor"):
        token_rewards(torch.zeros(2), mask, step_rewards=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="kl_coef must have 0 dimensions"):
        token_rewards(torch.zeros(2), mask, x, kl_coef=torch.ones(2))
    with pytest.raises(TypeError, match="scores must be a floating tensor"):
        truncation_penalty(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.bool), 1.0)
    with pytest.raises(ValueError, match="group_size"):
        grpo_advantages(torch.zeros(6), 1)
    with pytest.raises(ValueError, match="not a multiple of group_size"):
        rloo_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="alpha"):
        adaptive_lam(torch.tensor([3]), 0.0)
    with pytest.raises(TypeError, match="lengths"):
        adaptive_lam([3], 1.0)
    with pytest.raises(TypeError, match=r"rewards must be a torch\.Tensor"):
        reinforce_pp_advantages([[0.0]], mask)
