"""Tests of gaebook.envs.Pendulum beyond the contract suite: step-by-step parity with Gymnasium's Pendulum-v1,
clipping, rewards, initial states and episode ends, and its gravity argument."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.pendulum import angle_normalize as gym_angle_normalize

from gaebook.envs import Pendulum, angle_normalize


def make_env(batch_shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32, **kwargs) -> Pendulum:
    return Pendulum(batch_shape, generator=torch.Generator().manual_seed(seed), dtype=dtype, **kwargs)


def gym_envs(seeds: list[int], **kwargs) -> list:
    envs = [gym.make("Pendulum-v1", **kwargs) for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    return envs


def gym_states(envs: list, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.stack([env.unwrapped.state for env in envs]), dtype=dtype)


def step_both(env: Pendulum, envs: list, actions: torch.Tensor):
    """Step the batched env and every Gymnasium env with the same float64 torques."""
    ours = env.step(actions.to(env.dtype))
    theirs = [genv.step(a.numpy()) for genv, a in zip(envs, actions.double(), strict=True)]
    return ours, theirs


@pytest.mark.parametrize(("dtype", "resync", "rtol"), [(torch.float64, False, 0.0), (torch.float32, True, 1e-5)])
def test_random_torques_match_gymnasium_step_by_step(dtype, resync, rtol):
    """Several gym envs against one batched env, torques beyond the limits too, through several episodes.

    In float64 the batched env runs free and stays within 1e-5 of Gymnasium for whole episodes. In
    float32 its trajectories drift apart by rounding errors, so each step starts from Gymnasium's state,
    and values of order 10 (a wrapped angle's square, a reward) carry float32 rounding: rtol 1e-5.
    """
    atol = 1e-5
    seeds = [0, 1, 2, 3, 4]
    envs = gym_envs(seeds)
    env = make_env((len(seeds),), dtype=dtype)
    env.reset()
    env.state = gym_states(envs, dtype)  # start from Gymnasium's initial states
    g = torch.Generator().manual_seed(123)
    episodes = 0
    for t in range(1, 451):
        actions = 3 * torch.randn(len(seeds), 1, generator=g, dtype=torch.float64)  # often beyond ±2
        (next_obs, rewards, terminated, truncated, final_obs), g_steps = step_both(env, envs, actions)
        assert rewards.dtype == final_obs.dtype == next_obs.dtype == dtype
        g_obs = torch.tensor(np.stack([step[0] for step in g_steps]), dtype=dtype)  # float32 observations
        torch.testing.assert_close(final_obs, g_obs, atol=atol, rtol=rtol)
        g_rewards = torch.tensor([step[1] for step in g_steps], dtype=dtype)
        torch.testing.assert_close(rewards, g_rewards, atol=atol, rtol=rtol)
        assert not terminated.any() and not any(step[2] for step in g_steps)
        assert truncated.tolist() == [step[3] for step in g_steps] == [t % 200 == 0] * len(seeds)
        if t % 200:
            torch.testing.assert_close(env.state, gym_states(envs, dtype), atol=atol, rtol=rtol)
            if resync:
                env.state = gym_states(envs, dtype)
        else:  # both reset: continue from Gymnasium's new initial states
            episodes += 1
            for genv in envs:
                genv.reset()
            env.state = gym_states(envs, dtype)
    assert episodes == 2


def test_gravity_argument_matches_gymnasium():
    envs = gym_envs([7, 8], g=9.81)
    env = make_env((2,), dtype=torch.float64, g=9.81)
    env.reset()
    env.state = gym_states(envs, torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        actions = 2 * torch.randn(2, 1, generator=g, dtype=torch.float64)
        (_, rewards, _, _, final_obs), g_steps = step_both(env, envs, actions)
        g_obs = torch.tensor(np.stack([s[0] for s in g_steps]), dtype=torch.float64)
        torch.testing.assert_close(final_obs, g_obs, atol=1e-5, rtol=0)
        g_rewards = torch.tensor([s[1] for s in g_steps], dtype=torch.float64)
        torch.testing.assert_close(rewards, g_rewards, atol=1e-5, rtol=0)
        torch.testing.assert_close(env.state, gym_states(envs, torch.float64), atol=1e-12, rtol=0)


def test_torques_are_clipped_before_use():
    env = make_env((4,), dtype=torch.float64)
    clipped = make_env((4,), dtype=torch.float64)
    start = torch.tensor([[0.5, 0.0], [-1.0, 2.0], [3.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    env.reset()
    clipped.reset()
    env.state, clipped.state = start.clone(), start.clone()
    big = torch.tensor([[5.0], [-7.0], [2.5], [-100.0]], dtype=torch.float64)
    a = env.step(big)
    b = clipped.step(big.clamp(-2, 2))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=0, rtol=0)
    # the reward charges the clipped torque: 0.001 · 2² at the upright rest state
    assert a[1][3].item() == pytest.approx(-0.004, abs=1e-12)


def test_speed_is_clipped_at_eight_and_the_angle_moves_by_the_new_speed():
    envs = gym_envs([0, 1])
    states = np.array([[0.3, 7.9], [-2.0, -7.95]])
    for genv, state in zip(envs, states, strict=True):
        genv.unwrapped.state = state.copy()
    env = make_env((2,), dtype=torch.float64)
    env.reset()
    env.state = torch.tensor(states)
    actions = torch.tensor([[2.0], [-2.0]], dtype=torch.float64)
    step_both(env, envs, actions)
    assert env.state[:, 1].abs().tolist() == [8.0, 8.0]
    torch.testing.assert_close(env.state[:, 0], torch.tensor(states[:, 0]) + env.state[:, 1] * 0.05)
    torch.testing.assert_close(env.state, gym_states(envs, torch.float64), atol=1e-12, rtol=0)


def test_the_reward_wraps_the_angle_and_uses_the_state_before_the_step():
    env = make_env((3,), dtype=torch.float64)
    env.reset()
    env.state = torch.tensor([[0.1, 0.0], [0.1 + 2 * math.pi, 0.0], [0.1 - 4 * math.pi, 0.0]], dtype=torch.float64)
    _, rewards, _, _, _ = env.step(torch.zeros(3, 1, dtype=torch.float64))
    torch.testing.assert_close(rewards, torch.full((3,), -0.01, dtype=torch.float64))
    # the worst reward, from the bottom at full speed with full torque
    env.state = torch.tensor([[math.pi - 1e-12, 8.0]] * 3, dtype=torch.float64)
    _, rewards, _, _, _ = env.step(torch.full((3, 1), 2.0, dtype=torch.float64))
    torch.testing.assert_close(rewards, torch.full((3,), -(math.pi**2 + 0.1 * 64 + 0.004), dtype=torch.float64))


def test_angle_normalize_matches_gymnasium():
    x = torch.cat(
        [
            torch.linspace(-20, 20, 4001, dtype=torch.float64),
            torch.tensor([-math.pi, math.pi, 3 * math.pi, -3 * math.pi, 0.0], dtype=torch.float64),
        ]
    )
    torch.testing.assert_close(angle_normalize(x), torch.from_numpy(gym_angle_normalize(x.numpy())), atol=1e-12, rtol=0)
    assert bool(((angle_normalize(x) >= -math.pi) & (angle_normalize(x) < math.pi)).all())


def test_the_upright_rest_state_is_an_equilibrium_with_reward_zero():
    env = make_env((2,), dtype=torch.float64)
    env.reset()
    env.state = torch.zeros(2, 2, dtype=torch.float64)
    for _ in range(50):
        _, rewards, _, _, final_obs = env.step(torch.zeros(2, 1, dtype=torch.float64))
        assert bool((rewards == 0).all())
    torch.testing.assert_close(final_obs, torch.tensor([[1.0, 0.0, 0.0]] * 2, dtype=torch.float64))


def test_initial_states_are_uniform_in_the_box():
    obs = make_env((20_000,), seed=1).reset()
    env = make_env((20_000,), seed=1)
    env.reset()
    theta, theta_dot = env.state.unbind(-1)
    assert obs.shape == (20_000, 3)
    torch.testing.assert_close(obs, torch.stack((theta.cos(), theta.sin(), theta_dot), -1))
    assert bool((theta.abs() <= math.pi).all()) and bool((theta_dot.abs() <= 1).all())
    assert theta.min() < -3.13 and theta.max() > 3.13 and theta_dot.min() < -0.999 and theta_dot.max() > 0.999
    torch.testing.assert_close(env.state.mean(0), torch.zeros(2), atol=3e-2, rtol=0)
    torch.testing.assert_close(env.state.std(0), torch.tensor([math.pi, 1.0]) / math.sqrt(3), atol=1e-2, rtol=0)


def test_every_episode_is_truncated_on_step_200_and_restarts_from_a_fresh_state():
    env = make_env((64,), seed=2)
    env.reset()
    env.elapsed_steps = 3 * torch.arange(64)  # episodes at steps 0, 3, ..., 189: they end at different times
    g = torch.Generator().manual_seed(0)
    n_truncated = 0
    for _ in range(250):
        elapsed = env.elapsed_steps.clone()
        next_obs, rewards, terminated, truncated, final_obs = env.step(2 * torch.randn(64, 1, generator=g))
        assert not terminated.any()
        assert torch.equal(truncated, elapsed + 1 >= 200)
        assert torch.equal(env.elapsed_steps, torch.where(truncated, 0, elapsed + 1))
        torch.testing.assert_close(next_obs, Pendulum.observe(env.state))
        assert bool((env.state[truncated, 1].abs() <= 1).all()), "fresh states start slowly"
        assert bool(((rewards <= 0) & (rewards >= -16.2736045)).all())
        torch.testing.assert_close(final_obs[..., :2].norm(dim=-1), torch.ones(64))
        n_truncated += int(truncated.sum())
    assert n_truncated == 64 + 14  # every env once, and the 14 that started at step 150 or later twice


def test_gravity_must_be_a_finite_number():
    for bad in ("10", float("nan"), True):
        with pytest.raises(TypeError, match="g must be"):
            make_env((4,), g=bad)
