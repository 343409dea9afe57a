"""Tests of gaebook.envs.ScaledRewards beyond the contract suite: it scales the rewards and nothing else."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from gaebook.envs import CartPole, ScaledRewards, StepResult


def test_rewards_are_scaled_per_agent_and_the_rest_is_unchanged():
    plain = CartPole((2, 3), generator=torch.Generator().manual_seed(0))
    scale = torch.tensor([[0.1], [2.0]])
    scaled = ScaledRewards(CartPole((2, 3), generator=torch.Generator().manual_seed(0)), scale)
    assert_close(scaled.reset(), plain.reset())
    actions = torch.ones(2, 3, dtype=torch.long)
    for _ in range(30):  # long enough for some episodes to end
        ours, theirs = scaled.step(actions), plain.step(actions)
        assert_close(ours.rewards, scale * theirs.rewards)
        for a, b in zip(ours[:1] + ours[2:], theirs[:1] + theirs[2:], strict=True):
            assert torch.equal(a, b)


def test_a_float_scale():
    plain = CartPole((4,), generator=torch.Generator().manual_seed(0))
    scaled = ScaledRewards(CartPole((4,), generator=torch.Generator().manual_seed(0)), 3)
    plain.reset()
    scaled.reset()
    actions = torch.zeros(4, dtype=torch.long)
    assert torch.equal(scaled.step(actions).rewards, 3.0 * plain.step(actions).rewards)


def test_the_attributes_are_the_wrapped_environments():
    env = CartPole((2, 3), generator=torch.Generator().manual_seed(0))
    scaled = ScaledRewards(env, 0.5)
    for name in ("observation_size", "n_actions", "action_size", "max_episode_steps", "batch_shape", "device"):
        assert getattr(scaled, name) == getattr(env, name), name


class MetaEnv:
    """A stand-in environment on the ``meta`` device (shapes without data): like one on CUDA, off the CPU."""

    observation_size, n_actions, action_size, max_episode_steps = 4, 2, None, 10
    batch_shape = (2, 3)
    device = torch.device("meta")

    def reset(self) -> torch.Tensor:
        return torch.zeros(2, 3, 4, device=self.device)

    def step(self, actions: torch.Tensor, *, check_actions: bool = True) -> StepResult:
        obs, flags = torch.zeros(2, 3, 4, device=self.device), torch.zeros(2, 3, dtype=torch.bool, device=self.device)
        return StepResult(obs, torch.ones(2, 3, device=self.device), flags, flags, obs)


def test_a_tensor_scale_moves_once_to_the_environments_device():
    scaled = ScaledRewards(MetaEnv(), torch.tensor([[0.1], [2.0]]))  # the scale starts on the CPU
    assert scaled.scale.device == torch.device("meta")
    scaled.reset()
    rewards = scaled.step(torch.zeros(2, 3, dtype=torch.long, device="meta")).rewards
    assert rewards.device == torch.device("meta") and rewards.shape == (2, 3)
