"""Tests of gaebook.mdp: exact quantities, rollouts, and bad input."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from host_traffic import host_traffic

from gaebook.advantages import discounted_returns
from gaebook.mdp import TabularMDP, chain_mdp


@pytest.fixture
def mdp() -> TabularMDP:
    return chain_mdp(7, slip=0.2, gamma=0.9)


def random_policy(mdp: TabularMDP, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(mdp.n_states, mdp.n_actions, generator=g, dtype=torch.float64).softmax(-1)


def test_values_satisfy_the_bellman_equation(mdp):
    pi = random_policy(mdp, 0)
    v, q = mdp.state_values(pi), mdp.action_values(pi)
    torch.testing.assert_close(v, (pi * q).sum(-1) * ~mdp.terminal)
    assert bool((v[mdp.terminal] == 0).all())
    torch.testing.assert_close((pi * mdp.advantages(pi)).sum(-1), torch.zeros(mdp.n_states, dtype=torch.float64))


def test_values_match_monte_carlo(mdp):
    pi = random_policy(mdp, 1)
    g = torch.Generator().manual_seed(0)
    ro = mdp.rollout(pi, n_envs=4000, n_steps=150, generator=g, start_states=torch.full((4000,), 2))
    first = discounted_returns(ro.rewards, ro.terminated, gamma=mdp.gamma)[:, 0]
    stderr = first.std() / 4000**0.5
    assert abs(first.mean() - mdp.state_values(pi)[2]) < 4 * stderr


def test_objective_gradient_matches_finite_differences(mdp):
    logits = torch.randn(mdp.n_states, mdp.n_actions, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    logits.requires_grad_(True)
    mdp.objective(logits.softmax(-1)).backward()
    eps, (s, a) = 1e-6, (3, 1)
    bumped = logits.detach().clone()
    bumped[s, a] += eps
    numeric = (mdp.objective(bumped.softmax(-1)) - mdp.objective(logits.detach().softmax(-1))) / eps
    assert logits.grad[s, a].item() == pytest.approx(numeric.item(), rel=1e-4)


def test_optimal_policy_beats_random_policies(mdp):
    best = mdp.objective(mdp.optimal_policy())
    for seed in range(20):
        assert mdp.objective(random_policy(mdp, seed)) <= best + 1e-12


def test_rollout_flags_and_resets(mdp):
    pi = random_policy(mdp, 2)
    ro = mdp.rollout(pi, n_envs=64, n_steps=40, generator=torch.Generator().manual_seed(1), time_limit=5)
    assert ro.states.shape == (64, 40) and ro.rewards.dtype == torch.float64
    torch.testing.assert_close(ro.terminated, mdp.terminal[ro.next_states])
    assert not bool((ro.terminated & ro.truncated).any())
    done = ro.terminated | ro.truncated
    start = int(mdp.start.argmax())
    assert bool((ro.states[:, 1:][done[:, :-1]] == start).all())  # resets go to the start state
    continuing = ~done[:, :-1]
    torch.testing.assert_close(ro.states[:, 1:][continuing], ro.next_states[:, :-1][continuing])
    # no episode lasts more than the time limit
    for row in done:
        ends = torch.nonzero(row).flatten().tolist()
        lengths = [b - a for a, b in zip([-1, *ends[:-1]], ends, strict=True)]
        assert max(lengths, default=0) <= 5


def test_rollout_is_reproducible(mdp):
    pi = random_policy(mdp, 2)
    a = mdp.rollout(pi, n_envs=8, n_steps=20, generator=torch.Generator().manual_seed(5))
    b = mdp.rollout(pi, n_envs=8, n_steps=20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.states, b.states)


def test_forced_first_actions(mdp):
    pi = random_policy(mdp, 2)
    first = torch.tensor([0, 1] * 8)
    ro = mdp.rollout(
        pi,
        n_envs=16,
        n_steps=3,
        generator=torch.Generator().manual_seed(0),
        start_states=torch.full((16,), 3),
        first_actions=first,
    )
    assert torch.equal(ro.actions[:, 0], first) and bool((ro.states[:, 0] == 3).all())


def test_bad_input(mdp):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="policy must have shape"):
        mdp.state_values(torch.ones(3, 2))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        mdp.rollout(random_policy(mdp, 0), n_envs=2, n_steps=2, generator=0)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        mdp.rollout(random_policy(mdp, 0), n_envs=2, n_steps=0, generator=g)
    with pytest.raises(ValueError, match="transitions must be probabilities"):
        TabularMDP(mdp.transitions * 2, mdp.rewards, mdp.terminal, mdp.start, 0.9)
    with pytest.raises(ValueError, match="gamma must lie in"):
        TabularMDP(mdp.transitions, mdp.rewards, mdp.terminal, mdp.start, 1.0)
    with pytest.raises(ValueError, match="n_states must be at least 3"):
        chain_mdp(2)


def test_rollout_reads_nothing_and_the_exact_values_do(mdp):
    """The rollout's docstring promises no host synchronisation; the linear solve does read back."""
    pi = random_policy(mdp, 3)
    g = torch.Generator().manual_seed(0)
    assert host_traffic(lambda: mdp.rollout(pi, n_envs=8, n_steps=30, generator=g, time_limit=5)) == Counter()
    assert host_traffic(lambda: mdp.state_values(pi))["reads"] > 0
