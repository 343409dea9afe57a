"""Gymnasium's vector environments behind the contract :class:`gaebook.envs.VectorEnv`.

Gymnasium (1.1 or later) resets a finished sub-environment automatically, in one of three modes.
The default, ``NEXT_STEP``, returns the final observation now and the reset observation from the
*next* call to ``step``, whose action is ignored and whose reward is 0: a dummy step that must
be kept out of the advantages. ``SAME_STEP`` resets within the step that ended the episode:
``step`` returns the reset observation, and the final one is in ``info["final_obs"]`` (with the
mask ``info["_final_obs"]``). We use ``SAME_STEP``: every step is a real transition, and the final
observation, the one to bootstrap a truncated episode from, arrives with it.

Gymnasium's ``TimeLimit`` reports ``truncated=True`` whenever the step count reaches the limit,
even on a step that also terminates. The contract has the two flags never together (the state
reached is terminal, so termination wins): the adapter reports such a step as terminated only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from gaebook.envs.base import StepResult, resolve_device, validate_actions

__all__ = ["GymnasiumVectorEnv"]


class GymnasiumVectorEnv:
    """``n_envs`` copies of a Gymnasium environment, as tensors of shape ``(1, n_envs, ...)``.

    ``batch_shape`` is ``(1, n_envs)``: the leading dimension is the single agent of
    :class:`gaebook.networks.ActorCritic`. Observations must be vectors (a 1-D ``Box``), actions
    a ``Discrete`` space (``n_actions``) or a 1-D ``Box`` (``action_size``); observations and
    rewards are float32. ``max_episode_steps`` is the time limit of the environment's spec (or
    the one passed to ``gymnasium.make``); an environment without one is refused.

    Args:
        env_id: a registered environment, such as ``"CartPole-v1"``.
        n_envs: number of copies (stepped in turn, in this process).
        seed: seeds every :meth:`reset` (copy ``i`` gets ``seed + i``); the automatic resets
            within ``step`` continue from there.
        device: where the returned tensors live.
        **make_kwargs: passed on to ``gymnasium.make`` (``max_episode_steps=...``, say).
    """

    def __init__(
        self, env_id: str, n_envs: int, *, seed: int, device: torch.device | str = "cpu", **make_kwargs: Any
    ) -> None:
        if not isinstance(env_id, str):
            raise TypeError(f"env_id must be a string such as 'CartPole-v1'; got {type(env_id).__name__}")
        for name, value in (("n_envs", n_envs), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int; got {type(value).__name__}")
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1; got {n_envs}")
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"device must be a torch.device or a string; got {type(device).__name__}")
        self.device = resolve_device(device)
        # What gymnasium.make_vec builds in its "sync" mode: the copies are stepped in turn, in this process.
        self.env = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id, **make_kwargs)] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        observations, actions = self.env.single_observation_space, self.env.single_action_space
        spec = self.env.envs[0].spec
        limit = None if spec is None else spec.max_episode_steps
        if not isinstance(observations, gym.spaces.Box) or len(observations.shape) != 1:
            self.env.close()
            raise ValueError(f"env_id {env_id!r} must observe vectors (a 1-D Box); its space is {observations}")
        if isinstance(actions, gym.spaces.Discrete):
            self.n_actions: int | None = int(actions.n)
            self.action_size: int | None = None
        elif isinstance(actions, gym.spaces.Box) and len(actions.shape) == 1:
            self.n_actions, self.action_size = None, actions.shape[0]
        else:
            self.env.close()
            raise ValueError(f"env_id {env_id!r} must act in a Discrete or 1-D Box space; its space is {actions}")
        if limit is None:
            self.env.close()
            raise ValueError(f"env_id {env_id!r} has no time limit: pass max_episode_steps=...")
        self.observation_size: int = observations.shape[0]
        self.max_episode_steps: int = limit
        self.batch_shape = (1, n_envs)
        self.seed = seed
        self._started = False

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device).unsqueeze(0)

    def reset(self) -> Tensor:
        """Reset every copy; observations ``(1, n_envs, observation_size)``."""
        obs, _ = self.env.reset(seed=self.seed)
        self._started = True
        return self._tensor(obs)

    def step(self, actions: Tensor, *, check_actions: bool = True) -> StepResult:
        """Step with ``actions``: long ``(1, n_envs)`` or floating ``(1, n_envs, action_size)``.

        The actions are checked as by every :class:`gaebook.envs.VectorEnv`; they go to the host
        whatever ``check_actions`` says (Gymnasium steps NumPy arrays), and Gymnasium's
        environments check them too.

        Returns a :class:`gaebook.envs.StepResult`, each tensor ``(1, n_envs, ...)``: ``next_obs``
        is the reset observation where an episode ended, ``final_obs`` the observation the step
        reached; ``truncated`` is never true where ``terminated`` is.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        validate_actions(self, actions, values=check_actions)
        obs, rewards, terminated, truncated, info = self.env.step(actions.squeeze(0).cpu().numpy())
        final = np.array(obs, copy=True)
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = info["final_obs"][i]
        return StepResult(
            self._tensor(obs),
            self._tensor(rewards),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated & ~terminated, torch.bool),
            self._tensor(final),
        )

    def close(self) -> None:
        """Close Gymnasium's environments."""
        self.env.close()
