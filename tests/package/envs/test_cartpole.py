"""Tests of gaebook.envs.CartPole beyond the contract suite: step-by-step parity with Gymnasium's CartPole-v1,
its episode ends and initial states."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from gaebook.envs import CartPole

THETA_MAX = 12 * 2 * math.pi / 360


def make_env(batch_shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> CartPole:
    return CartPole(batch_shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def controller(state: torch.Tensor) -> torch.Tensor:
    """Push towards where the pole is falling: keeps CartPole up for 500 steps from these seeds."""
    return (state[..., 2] + 0.5 * state[..., 3] > 0).long()


def gym_envs(seeds: list[int]) -> list:
    envs = [gym.make("CartPole-v1") for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    return envs


def gym_states(envs: list, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.stack([env.unwrapped.state for env in envs]), dtype=dtype)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_random_actions_match_gymnasium_step_by_step(dtype, atol):
    """Several gym envs against one batched env, random actions, through many episodes of each."""
    seeds = [0, 1, 2, 3, 4, 5]
    envs = gym_envs(seeds)
    env = make_env((len(seeds),), dtype=dtype)
    env.reset()
    env.state = gym_states(envs, dtype)  # start from Gymnasium's initial states
    g = torch.Generator().manual_seed(123)
    episodes = [0] * len(seeds)
    for _ in range(400):
        actions = torch.randint(0, 2, (len(seeds),), generator=g)
        next_obs, rewards, terminated, truncated, final_obs = env.step(actions)
        assert rewards.dtype == final_obs.dtype == next_obs.dtype == dtype
        g_steps = [genv.step(int(a)) for genv, a in zip(envs, actions, strict=True)]
        torch.testing.assert_close(final_obs, gym_states(envs, dtype), atol=atol, rtol=0)
        g_obs = torch.tensor(np.stack([step[0] for step in g_steps]), dtype=dtype)  # gym's float32 observations
        torch.testing.assert_close(final_obs, g_obs, atol=atol, rtol=0)
        assert terminated.tolist() == [step[2] for step in g_steps]
        assert truncated.tolist() == [step[3] for step in g_steps]
        assert rewards.tolist() == [step[1] for step in g_steps] == [1.0] * len(seeds)
        restarted = [i for i, step in enumerate(g_steps) if step[2] or step[3]]
        for i in restarted:
            episodes[i] += 1
            envs[i].reset()
        # Where an episode ended, continue from Gymnasium's new initial state instead of ours.
        if restarted:
            state = env.state.clone()
            state[restarted] = gym_states([envs[i] for i in restarted], dtype)
            env.state = state
    assert min(episodes) >= 5  # every env went through several episodes, all terminated


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_truncation_at_step_500_matches_gymnasium(dtype):
    """A controller that keeps the pole up: truncated exactly on step 500, as Gymnasium's TimeLimit says."""
    seeds = [1, 2, 3, 5]
    envs = gym_envs(seeds)
    env = make_env((len(seeds),), dtype=dtype)
    env.reset()
    env.state = gym_states(envs, dtype)
    for t in range(1, 501):
        # Both sides step from Gymnasium's state with the controller's action on it: a closed loop
        # amplifies the rounding differences of sin/cos between torch builds, so comparing whole
        # trajectories would test the torch build, not the dynamics.
        env.state = gym_states(envs, dtype)
        actions = controller(env.state)
        next_obs, _rewards, terminated, truncated, final_obs = env.step(actions)
        g_flags = [genv.step(int(a))[2:4] for genv, a in zip(envs, actions, strict=True)]
        assert g_flags == [(False, t == 500)] * len(seeds)
        assert not terminated.any()
        assert bool((truncated == (t == 500)).all())
        if dtype == torch.float64:  # float32 differs from Gymnasium's float64 step by float32 rounding
            torch.testing.assert_close(final_obs, gym_states(envs, dtype), atol=1e-12, rtol=0)
    assert bool((env.elapsed_steps == 0).all())
    assert bool((next_obs.abs() <= 0.05).all()) and not torch.equal(next_obs, final_obs)


def test_each_edge_of_the_track_and_each_side_of_the_pole_terminates_as_in_gymnasium():
    states = [
        [2.39, 1.0, 0.0, 0.0],  # leaves the track on the right
        [-2.39, -1.0, 0.0, 0.0],  # ... on the left
        [2.39, -1.0, 0.0, 0.0],  # near an edge, moving back: goes on
        [-2.39, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.2, 1.0],  # the pole falls to the right
        [0.0, 0.0, -0.2, -1.0],  # ... to the left
        [0.0, 0.0, 0.2, -1.0],  # near the limit, swinging back: goes on
        [0.0, 0.0, -0.2, 1.0],
    ]
    env = make_env((len(states),), dtype=torch.float64)
    env.reset()
    env.state = torch.tensor(states, dtype=torch.float64)
    _, _, terminated, truncated, final_obs = env.step(torch.tensor([1, 0] * (len(states) // 2)))
    assert terminated.tolist() == [True, True, False, False] * 2
    assert not truncated.any()
    for i, state in enumerate(states):
        genv = gym.make("CartPole-v1")
        genv.reset(seed=0)
        genv.unwrapped.state = np.array(state)
        assert genv.step(int(i % 2 == 0))[2] == bool(terminated[i])
        torch.testing.assert_close(final_obs[i], torch.tensor(genv.unwrapped.state), atol=1e-12, rtol=0)


def test_termination_on_step_500_is_not_a_truncation():
    """The one deliberate difference in flags: Gymnasium's TimeLimit would say both."""
    genv = gym.make("CartPole-v1")
    genv.reset(seed=0)
    genv.unwrapped.state = np.array([2.39, 1.0, 0.0, 0.0])
    genv._elapsed_steps = 499
    assert genv.step(1)[2:4] == (True, True)

    env = make_env((2,), dtype=torch.float64)
    env.reset()
    env.state = torch.tensor([[2.39, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    env.elapsed_steps = torch.tensor([499, 499])
    _, _, terminated, truncated, _ = env.step(torch.tensor([1, 1]))
    assert terminated.tolist() == [True, False]
    assert truncated.tolist() == [False, True]


def test_initial_states_are_uniform_in_the_box():
    obs = make_env((20_000,), seed=1).reset()
    assert obs.shape == (20_000, 4)
    assert bool((obs.abs() <= 0.05).all())
    assert bool((obs.amin(0) < -0.0495).all()) and bool((obs.amax(0) > 0.0495).all())
    torch.testing.assert_close(obs.mean(0), torch.zeros(4), atol=2e-3, rtol=0)
    torch.testing.assert_close(obs.std(0), torch.full((4,), 0.1 / math.sqrt(12)), atol=5e-4, rtol=0)


def test_episode_ends_follow_the_rules_and_restart_from_fresh_states():
    env = make_env((256,), seed=2)
    env.reset()
    g = torch.Generator().manual_seed(0)
    n_terminated = n_truncated = 0
    for t in range(120):
        if t == 60:  # bring half the envs to the brink of the time limit
            env.elapsed_steps = torch.where(torch.arange(256) % 2 == 0, 499, env.elapsed_steps)
        elapsed = env.elapsed_steps.clone()
        next_obs, rewards, terminated, truncated, final_obs = env.step(torch.randint(0, 2, (256,), generator=g))
        done = terminated | truncated
        # The counter ticks where the episode goes on; where it ended, next_obs is a fresh initial state.
        assert torch.equal(env.elapsed_steps, torch.where(done, 0, elapsed + 1))
        assert bool((next_obs[done].abs() <= 0.05).all())
        x, theta = final_obs[..., 0], final_obs[..., 2]
        assert torch.equal(terminated, (x.abs() > 2.4) | (theta.abs() > THETA_MAX))
        assert torch.equal(truncated, (elapsed + 1 >= 500) & ~terminated)
        assert torch.equal(env.state, next_obs)
        assert bool((rewards == 1).all())
        n_terminated += int(terminated.sum())
        n_truncated += int(truncated.sum())
    assert n_terminated > 500 and n_truncated > 50  # both kinds of episode end were exercised
