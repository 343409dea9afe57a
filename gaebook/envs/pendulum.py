"""Pendulum-v1 as a batch of tensors: Gymnasium's swing-up task, vectorised in torch.

:class:`Pendulum` runs any number of independent copies of Gymnasium's ``Pendulum-v1`` at once,
on any device. It matches Gymnasium's ``PendulumEnv`` wrapped in ``TimeLimit(max_episode_steps=200)``:

* the same constants (gravity ``g = 10.0``, mass 1, length 1, time step 0.05 s, maximal torque
  2, maximal speed 8) and the same semi-implicit Euler step, written in the same order: the
  speed is updated and clipped to ``[-8, 8]``, then the angle moves by the *new* speed;
* the same action handling: the torque is clipped to ``[-2, 2]`` before it is used;
* the same reward, ``-(θ² + 0.1·θ̇² + 0.001·u²)`` with ``(θ, θ̇)`` the state *before* the step,
  ``θ`` wrapped into ``[-π, π)``, and ``u`` the clipped torque;
* the same observation ``(cos θ, sin θ, θ̇)`` of the state the step reached;
* the same initial states (``θ`` uniform in ``[-π, π)``, ``θ̇`` uniform in ``[-1, 1)``);
* no termination, and truncation when an episode reaches 200 steps;
* same-step autoreset, as in :class:`gaebook.envs.CartPole`: ``step`` returns both the
  observation the step reached (``final_obs``, to bootstrap from) and the one the policy sees
  next (``next_obs``, from a fresh initial state where an episode ended).

Deliberate differences:

* **Float dtype.** Gymnasium computes in float64 and returns float32 observations. Here
  everything is in ``dtype``: ``torch.float64`` reproduces Gymnasium's trajectories to rounding
  error, the default ``torch.float32`` computes in float32 throughout.
* **Random numbers.** Initial states come from the ``torch.Generator`` passed in, not from
  NumPy, so the same seed gives different (equally distributed) episodes than Gymnasium.

The angle ``θ`` is measured from the upright position, counter-clockwise, and is not wrapped in
the state (as in Gymnasium); only the reward wraps it. The checks of arguments and actions
(finite torques, when ``check_actions=True``) are those of :class:`gaebook.envs.TensorEnv`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gaebook.envs.base import StepResult, TensorEnv

__all__ = ["Pendulum", "angle_normalize"]


def angle_normalize(theta: Tensor) -> Tensor:
    """Wrap angles into ``[-π, π)``, as Gymnasium's ``angle_normalize`` does (a floored modulo)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class Pendulum(TensorEnv):
    """A batch of independent Pendulum-v1 environments as tensors, on any device.

    Shapes: ``batch_shape`` is a tuple of leading dims, e.g. ``(n_agents, n_envs)``; the state is
    ``(*batch_shape, 2)`` with coordinates ``(θ, θ̇)``, observations are ``(*batch_shape, 3)``
    with coordinates ``(cos θ, sin θ, θ̇)``, actions floating ``(*batch_shape, 1)``: the torque,
    clipped to ``[-2, 2]`` as in Gymnasium and converted to ``dtype``.

    A step lasts 0.05 s and pays ``-(θ² + 0.1·θ̇² + 0.001·u²)``, in ``[-16.2736, 0]``.
    ``terminated`` is always ``False`` (the task never ends); ``truncated``: the episode reached
    200 steps.

    Attributes:
        state: ``(*batch_shape, 2)`` current ``(θ, θ̇)`` of every env (set by :meth:`reset`).
            It may be overwritten, e.g. to start from given states.
        elapsed_steps: long ``(*batch_shape,)`` steps taken so far in each env's episode.

    Example::

        env = Pendulum((8,), generator=torch.Generator().manual_seed(0))
        obs = env.reset()
        obs, rewards, terminated, truncated, final_obs = env.step(torch.zeros(8, 1))
    """

    observation_size = 3
    action_size = 1
    max_episode_steps = 200

    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    m = 1.0
    l = 1.0  # noqa: E741 (Gymnasium's name)
    reset_bounds = (math.pi, 1.0)  # θ and θ̇ start uniform in [-bound, bound)

    state: Tensor

    def __init__(
        self,
        batch_shape: tuple[int, ...],
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        g: float = 10.0,
    ) -> None:
        """Args:
        batch_shape: leading dims of the batch, a tuple of positive ints (``()`` is one env).
        generator: the source of all randomness (initial states); must live on ``device``.
        device: where the tensors live; defaults to the generator's device.
        dtype: floating dtype of states, observations and rewards.
        g: gravity in m/s², Gymnasium's ``g`` argument (default 10.0).
        """
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
            raise TypeError(f"g must be a finite float; got {g!r}")
        super().__init__(batch_shape, generator=generator, device=device, dtype=dtype)
        self.g = float(g)
        # Made once: a tensor built from Python numbers on every draw would be a blocking copy on CUDA.
        self._reset_bounds = torch.tensor(self.reset_bounds, dtype=dtype, device=self.device)
        self.elapsed_steps = torch.zeros(batch_shape, dtype=torch.long, device=self.device)

    def _initial_states(self) -> Tensor:
        """Fresh initial states ``(*batch_shape, 2)``: θ uniform in [-π, π), θ̇ uniform in [-1, 1)."""
        u = torch.rand((*self.batch_shape, 2), generator=self.generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self._reset_bounds

    @staticmethod
    def observe(state: Tensor) -> Tensor:
        """The observation ``(cos θ, sin θ, θ̇)`` of states ``(..., 2)``: ``(..., 3)``."""
        theta, theta_dot = state.unbind(-1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), dim=-1)

    def _reset(self) -> Tensor:
        self.state = self._initial_states()
        self.elapsed_steps = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)
        return self.observe(self.state)

    def _step(self, actions: Tensor) -> StepResult:
        theta, theta_dot = self.state.unbind(-1)
        u = actions.to(self.dtype).squeeze(-1).clamp(-self.max_torque, self.max_torque)

        # The same expressions, in the same order, as Gymnasium's PendulumEnv.step.
        costs = angle_normalize(theta).square() + 0.1 * theta_dot.square() + 0.001 * u.square()
        acceleration = 3 * self.g / (2 * self.l) * torch.sin(theta) + 3.0 / (self.m * self.l**2) * u
        new_theta_dot = (theta_dot + acceleration * self.dt).clamp(-self.max_speed, self.max_speed)
        new_theta = theta + new_theta_dot * self.dt
        reached = torch.stack((new_theta, new_theta_dot), dim=-1)

        elapsed = self.elapsed_steps + 1
        truncated = elapsed >= self.max_episode_steps
        terminated = torch.zeros_like(truncated)

        # Same-step autoreset: draw initial states for every env (no host sync), keep them where done.
        self.state = torch.where(truncated.unsqueeze(-1), self._initial_states(), reached)
        self.elapsed_steps = torch.where(truncated, 0, elapsed)
        return StepResult(self.observe(self.state), -costs, terminated, truncated, self.observe(reached))
