"""ScaledRewards scales the rewards and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from gaebook.cartpole import CartPole
from gaebook.wrappers import ScaledRewards


def test_rewards_are_scaled_per_agent_and_the_rest_is_unchanged():
    plain = CartPole((2, 3), generator=torch.Generator().manual_seed(0))
    scale = torch.tensor([[0.1], [2.0]])
    scaled = ScaledRewards(CartPole((2, 3), generator=torch.Generator().manual_seed(0)), scale)
    assert_close(scaled.reset(), plain.reset())
    actions = torch.ones(2, 3, dtype=torch.long)
    for _ in range(30):  # long enough for some episodes to end
        ours, theirs = scaled.step(actions), plain.step(actions)
        assert_close(ours[1], scale * theirs[1])
        for a, b in zip(ours[:1] + ours[2:], theirs[:1] + theirs[2:], strict=True):
            assert torch.equal(a, b)


def test_bad_scale_is_rejected():
    env = CartPole((1, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="scale"):
        ScaledRewards(env, "0.1")
    with pytest.raises(TypeError, match="scale"):
        ScaledRewards(env, True)
