"""Tests of gaebook.envs.GymnasiumVectorEnv beyond the contract suite: the attributes it reads from
Gymnasium, the spaces it accepts, and its episode ends against Gymnasium's own."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from gaebook.envs import GymnasiumVectorEnv


def test_the_time_limit_is_the_specs_or_the_one_passed_to_make():
    cartpole, pendulum = GymnasiumVectorEnv("CartPole-v1", 2, seed=0), GymnasiumVectorEnv("Pendulum-v1", 2, seed=0)
    assert (cartpole.max_episode_steps, pendulum.max_episode_steps) == (500, 200)
    assert (cartpole.observation_size, cartpole.n_actions, cartpole.action_size) == (4, 2, None)
    assert (pendulum.observation_size, pendulum.n_actions, pendulum.action_size) == (3, None, 1)
    short = GymnasiumVectorEnv("CartPole-v1", 2, seed=0, max_episode_steps=7)
    assert short.max_episode_steps == 7 and short.batch_shape == (1, 2)
    short.reset()
    for _ in range(7):
        _, _, terminated, truncated, _ = short.step(torch.tensor([[0, 1]]))
    assert bool((terminated | truncated).all())  # Gymnasium's limit is the one the adapter reports


def test_a_termination_on_the_last_allowed_step_is_not_a_truncation():
    """Gymnasium's TimeLimit reports both flags then; the contract has termination win."""
    probe = gym.make("CartPole-v1")
    probe.reset(seed=0)
    length = next(t for t in range(1, 500) if probe.step(0)[2])  # push left until the pole falls
    limited = gym.make("CartPole-v1", max_episode_steps=length)
    limited.reset(seed=0)
    flags = [limited.step(0)[2:4] for _ in range(length)]
    assert flags[-1] == (True, True)

    env = GymnasiumVectorEnv("CartPole-v1", 1, seed=0, max_episode_steps=length)
    env.reset()
    for _ in range(length):
        _, _, terminated, truncated, _ = env.step(torch.zeros(1, 1, dtype=torch.long))
    assert terminated.tolist() == [[True]] and truncated.tolist() == [[False]]


class Toy(gym.Env):
    """An environment with the spaces it is given, and no time limit of its own."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture
def toy_id():
    env_id = "GaebookToy-v0"
    gym.register(env_id, entry_point=Toy)
    yield env_id
    del gym.registry[env_id]


def test_spaces_other_than_vectors_and_a_time_limit_are_required(toy_id):
    vector, image = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(0, 1, (2, 2), np.float32)
    discrete, grid = gym.spaces.Discrete(2), gym.spaces.MultiDiscrete([2, 2])
    env = GymnasiumVectorEnv(toy_id, 2, seed=0, observation_space=vector, action_space=discrete, max_episode_steps=5)
    assert (env.observation_size, env.n_actions, env.max_episode_steps) == (3, 2, 5)
    with pytest.raises(ValueError, match="must observe vectors"):
        GymnasiumVectorEnv(toy_id, 2, seed=0, observation_space=image, action_space=discrete, max_episode_steps=5)
    with pytest.raises(ValueError, match="must observe vectors"):
        GymnasiumVectorEnv(toy_id, 2, seed=0, observation_space=discrete, action_space=discrete, max_episode_steps=5)
    with pytest.raises(ValueError, match="must act in a Discrete or 1-D Box space"):
        GymnasiumVectorEnv(toy_id, 2, seed=0, observation_space=vector, action_space=grid, max_episode_steps=5)
    with pytest.raises(ValueError, match="no time limit"):
        GymnasiumVectorEnv(toy_id, 2, seed=0, observation_space=vector, action_space=discrete)
