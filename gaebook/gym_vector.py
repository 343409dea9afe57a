"""Gymnasium 1.x vector environments behind the tensor interface of :mod:`gaebook.ppo`.

Gymnasium 1.x resets a finished sub-environment automatically, in one of three modes. The
default, ``NEXT_STEP``, returns the final observation now and the reset observation from the
*next* call to ``step``, whose action is ignored and whose reward is 0: a dummy step that must
be kept out of the advantages. ``SAME_STEP`` resets within the step that ended the episode:
``step`` returns the reset observation, and the final one is in ``info["final_obs"]`` (with the
mask ``info["_final_obs"]``). We use ``SAME_STEP``: every step is a real transition, and the final
observation, the one to bootstrap a truncated episode from, arrives with it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

__all__ = ["GymnasiumVectorEnv"]


class GymnasiumVectorEnv:
    """``n_envs`` copies of a Gymnasium environment, as tensors of shape ``(1, n_envs, ...)``.

    The leading dimension is the single agent of :class:`gaebook.networks.ActorCritic`.

    Args:
        env_id: a registered environment, such as ``"CartPole-v1"``.
        n_envs: number of copies (stepped in turn, in this process).
        seed: seeds the copies' first resets (copy ``i`` gets ``seed + i``).
        device: where the returned tensors live.
        **make_kwargs: passed on to ``gymnasium.make`` (``max_episode_steps=...``, say).
    """

    def __init__(
        self, env_id: str, n_envs: int, *, seed: int, device: torch.device | str = "cpu", **make_kwargs: object
    ) -> None:
        self.env = gym.make_vec(
            env_id,
            num_envs=n_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
            **make_kwargs,
        )
        self.n_envs, self.seed, self.device = n_envs, seed, torch.device(device)
        self.discrete = isinstance(self.env.single_action_space, gym.spaces.Discrete)

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device).unsqueeze(0)

    def reset(self) -> Tensor:
        """Reset every copy; observations ``(1, n_envs, obs_size)``."""
        obs, _ = self.env.reset(seed=self.seed)
        return self._tensor(obs)

    def step(self, actions: Tensor, *, check_actions: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Step with ``actions`` of shape ``(1, n_envs[, action_size])``.

        The actions go to the host whatever ``check_actions`` says (Gymnasium steps NumPy arrays),
        and Gymnasium's environments check them themselves; the flag is accepted for the protocol
        of :class:`gaebook.ppo.VectorEnv`.

        Returns ``(next_obs, rewards, terminated, truncated, final_obs)``, each ``(1, n_envs, ...)``:
        ``next_obs`` is the reset observation where an episode ended, ``final_obs`` the observation
        the step reached.
        """
        a = actions.squeeze(0).cpu().numpy()
        obs, rewards, terminated, truncated, info = self.env.step(a)
        final = np.array(obs, copy=True)
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = info["final_obs"][i]
        return (
            self._tensor(obs),
            self._tensor(rewards),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),
            self._tensor(final),
        )

    def close(self) -> None:
        self.env.close()
