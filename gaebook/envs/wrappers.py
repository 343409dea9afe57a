"""Wrappers around vector environments: each is a :class:`gaebook.envs.VectorEnv` itself."""

from __future__ import annotations

import torch
from torch import Tensor

from gaebook.envs.base import StepResult, VectorEnv

__all__ = ["ScaledRewards"]


class ScaledRewards:
    """``env`` with every reward multiplied by ``scale``; observations and episode ends unchanged.

    A constant scale is the simplest reward normalisation: PPO's value loss and its value
    clipping are in units of the return, so returns of hundreds (Pendulum's reach −1600) make
    the critic's steps too small or its clipping too tight. ``scale`` is a float or a tensor that
    broadcasts against the rewards ``(*batch_shape,)``, e.g. ``(G, 1)`` for one scale per agent
    of a ``(G, n_envs)`` batch; a tensor is moved to ``env.device`` once, here. Report returns
    in the original units by dividing by ``scale``.

    The attributes of the contract (``observation_size``, ``n_actions``, ``action_size``,
    ``max_episode_steps``, ``batch_shape``, ``device``) are those of ``env``.
    """

    def __init__(self, env: VectorEnv, scale: float | Tensor) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(f"env must be a VectorEnv (see gaebook.envs.VectorEnv); got {type(env).__name__}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, Tensor)):
            raise TypeError(f"scale must be a float or a tensor; got {type(scale).__name__}")
        if not isinstance(scale, Tensor):
            scale = float(scale)
        else:
            if not scale.dtype.is_floating_point:
                raise TypeError(f"scale must be a floating tensor; got dtype {scale.dtype}")
            shape = env.batch_shape
            try:
                broadcast = torch.broadcast_shapes(scale.shape, shape)
            except RuntimeError:
                broadcast = None
            if broadcast != shape:
                raise ValueError(f"scale of shape {tuple(scale.shape)} must broadcast against the rewards {shape}")
            scale = scale.to(env.device)
        self.env, self.scale = env, scale

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def n_actions(self) -> int | None:
        return self.env.n_actions

    @property
    def action_size(self) -> int | None:
        return self.env.action_size

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.env.batch_shape

    @property
    def device(self) -> torch.device:
        return self.env.device

    def reset(self) -> Tensor:
        """The wrapped environment's first observations."""
        return self.env.reset()

    def step(self, actions: Tensor, *, check_actions: bool = True) -> StepResult:
        """``env.step(actions, check_actions=...)`` with the rewards scaled."""
        result = self.env.step(actions, check_actions=check_actions)
        return result._replace(rewards=self.scale * result.rewards)
