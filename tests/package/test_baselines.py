"""The transcribed loops of other libraries agree with gaebook.gae on matched data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaebook import gae, next_valid_values
from gaebook.baselines import associative_scan_gae, cleanrl_gae, discount_cumsum, masked_token_gae, sb3_gae

GAMMA, LAM = 0.99, 0.95


def episode_rollout(n: int = 4, steps: int = 50, seed: int = 0):
    """Consistent values (next_values[t] = values[t+1]) and terminations, time last."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, steps + 1, generator=g, dtype=torch.float64)
    rewards = torch.randn(n, steps, generator=g, dtype=torch.float64)
    terminated = torch.rand(n, steps, generator=g) < 0.1
    return rewards, values[:, :-1].contiguous(), values[:, 1:].contiguous(), terminated


def sb3_inputs(rewards, values, next_values, terminated):
    starts = np.zeros(rewards.T.shape)
    starts[1:] = terminated.T[:-1].numpy()
    return rewards.T.numpy(), values.T.numpy(), starts, next_values[:, -1].numpy(), terminated[:, -1].numpy()


def test_sb3_loop_agrees():
    r, v, nv, term = episode_rollout()
    ours, ours_ret = gae(r, v, nv, term, gamma=GAMMA, lam=LAM)
    adv, ret = sb3_gae(*sb3_inputs(r, v, nv, term), GAMMA, LAM)
    np.testing.assert_allclose(adv.T, ours.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret.T, ours_ret.numpy(), rtol=1e-10, atol=1e-10)


def test_sb3_transcription_matches_the_library():
    buffers = pytest.importorskip("stable_baselines3.common.buffers")
    from gymnasium import spaces

    r, v, nv, term = (x.float() if x.is_floating_point() else x for x in episode_rollout(seed=1))
    n, steps = r.shape
    buf = buffers.RolloutBuffer(
        steps, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), gamma=GAMMA, gae_lambda=LAM, n_envs=n
    )
    rewards, values, starts, last_values, dones = sb3_inputs(r, v, nv, term)
    buf.rewards[:], buf.values[:], buf.episode_starts[:] = rewards, values, starts
    buf.compute_returns_and_advantage(torch.as_tensor(last_values), dones.astype(np.float32))
    adv, ret = sb3_gae(rewards, values, starts, last_values, dones, GAMMA, LAM)
    np.testing.assert_allclose(buf.advantages, adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(buf.returns, ret, rtol=1e-5, atol=1e-5)


def test_cleanrl_loop_agrees():
    r, v, nv, term = episode_rollout(seed=2)
    dones = torch.zeros(r.shape[::-1], dtype=r.dtype)
    dones[1:] = term.T[:-1].to(r.dtype)
    adv, ret = cleanrl_gae(r.T, v.T, dones, nv[:, -1], term[:, -1].to(r.dtype), GAMMA, LAM)
    ours, ours_ret = gae(r, v, nv, term, gamma=GAMMA, lam=LAM)
    torch.testing.assert_close(adv.T, ours)
    torch.testing.assert_close(ret.T, ours_ret)
    # the same time-major buffers, solved by gaebook in their own layout
    major, major_ret = gae(*(x.T.contiguous() for x in (r, v, nv, term)), gamma=GAMMA, lam=LAM, time_dim=0)
    torch.testing.assert_close((major, major_ret), (adv, ret))


def test_associative_scan_formulation_agrees():
    pytest.importorskip("torch._higher_order_ops.associative_scan")  # a prototype API of recent torch
    r, v, nv, term = (x.T.contiguous() for x in episode_rollout(n=3, steps=70, seed=5))  # time-major
    adv, ret = associative_scan_gae(r, v, nv, term.to(r.dtype), GAMMA, LAM)
    ours, ours_ret = gae(r, v, nv, term, gamma=GAMMA, lam=LAM, time_dim=0)
    torch.testing.assert_close((adv, ret), (ours, ours_ret))


def test_masked_token_loop_agrees_at_valid_tokens():
    r, v, _, _ = episode_rollout(seed=3)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(r.shape, generator=g) < 0.7
    adv, ret = masked_token_gae(r, v, mask.to(r.dtype), GAMMA, LAM)
    no_end = torch.zeros_like(mask)
    ours, ours_ret = gae(r, v, next_valid_values(v, mask), no_end, gamma=GAMMA, lam=LAM, mask=mask)
    torch.testing.assert_close(adv[mask], ours[mask])
    torch.testing.assert_close(ret[mask], ours_ret[mask])


def test_lfilter_is_gae_without_episode_ends():
    pytest.importorskip("scipy")
    r, v, nv, _ = episode_rollout(seed=4)
    no_end = torch.zeros(r.shape, dtype=torch.bool)
    ours, _ = gae(r, v, nv, no_end, gamma=GAMMA, lam=LAM)
    deltas = (r + GAMMA * nv - v).numpy()
    np.testing.assert_allclose(discount_cumsum(deltas, GAMMA * LAM), ours.numpy(), rtol=1e-10, atol=1e-10)
