"""Wrappers around the vector environments that :func:`gaebook.ppo.train` accepts."""

from __future__ import annotations

from torch import Tensor

from gaebook.ppo import VectorEnv

__all__ = ["ScaledRewards"]


class ScaledRewards:
    """``env`` with every reward multiplied by ``scale``; observations and episode ends unchanged.

    A constant scale is the simplest reward normalisation: PPO's value loss and its value
    clipping are in units of the return, so returns of hundreds (Pendulum's reach −1600) make
    the critic's steps too small or its clipping too tight. ``scale`` is a float or a tensor that
    broadcasts against the rewards ``(G, n_envs)``, e.g. ``(G, 1)`` for one scale per agent.
    Report returns in the original units by dividing by ``scale``.
    """

    def __init__(self, env: VectorEnv, scale: float | Tensor) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, Tensor)):
            raise TypeError(f"scale must be a float or a tensor; got {type(scale).__name__}")
        self.env, self.scale = env, scale

    def reset(self) -> Tensor:
        """The wrapped environment's first observations."""
        return self.env.reset()

    def step(self, actions: Tensor, *, check_actions: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``env.step(actions, check_actions=...)`` with the rewards scaled."""
        next_obs, rewards, terminated, truncated, final_obs = self.env.step(actions, check_actions=check_actions)
        return next_obs, self.scale * rewards, terminated, truncated, final_obs
