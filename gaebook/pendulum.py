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
* same-step autoreset, as in :class:`gaebook.cartpole.CartPole`: :meth:`Pendulum.step` returns
  both the observation the step reached (``final_obs``, to bootstrap from) and the one the
  policy sees next (``next_obs``, from a fresh initial state where an episode ended).

Deliberate differences:

* **Float dtype.** Gymnasium computes in float64 and returns float32 observations. Here
  everything is in ``dtype``: ``torch.float64`` reproduces Gymnasium's trajectories to rounding
  error, the default ``torch.float32`` computes in float32 throughout.
* **Random numbers.** Initial states come from the ``torch.Generator`` passed in, not from
  NumPy, so the same seed gives different (equally distributed) episodes than Gymnasium.

The angle ``θ`` is measured from the upright position, counter-clockwise, and is not wrapped in
the state (as in Gymnasium); only the reward wraps it. ``step`` never moves data to the host
unless ``check_actions=True`` (the default) asks it to check that the actions are finite.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gaebook.env_checks import check_action_tensor, check_batch_args

__all__ = ["Pendulum", "angle_normalize"]


def angle_normalize(theta: Tensor) -> Tensor:
    """Wrap angles into ``[-π, π)``, as Gymnasium's ``angle_normalize`` does (a floored modulo)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class Pendulum:
    """A batch of independent Pendulum-v1 environments as tensors, on any device.

    Shapes: ``batch_shape`` is a tuple of leading dims, e.g. ``(n_agents, n_envs)``; the state is
    ``(*batch_shape, 2)`` with coordinates ``(θ, θ̇)``, observations are ``(*batch_shape, 3)``
    with coordinates ``(cos θ, sin θ, θ̇)``, actions ``(*batch_shape, 1)`` (the torque).

    Attributes:
        state: ``(*batch_shape, 2)`` current ``(θ, θ̇)`` of every env (``None`` before
            :meth:`reset`). It may be overwritten, e.g. to start from given states.
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
        device = check_batch_args(batch_shape, generator, device, dtype)
        self.batch_shape = batch_shape
        self.generator = generator
        self.device = device
        self.dtype = dtype
        self.g = float(g)
        self.state: Tensor | None = None
        self.elapsed_steps = torch.zeros(batch_shape, dtype=torch.long, device=device)

    def _initial_states(self) -> Tensor:
        """Fresh initial states ``(*batch_shape, 2)``: θ uniform in [-π, π), θ̇ uniform in [-1, 1)."""
        u = torch.rand((*self.batch_shape, 2), generator=self.generator, device=self.device, dtype=self.dtype)
        bounds = torch.tensor(self.reset_bounds, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * bounds

    @staticmethod
    def observe(state: Tensor) -> Tensor:
        """The observation ``(cos θ, sin θ, θ̇)`` of states ``(..., 2)``: ``(..., 3)``."""
        theta, theta_dot = state.unbind(-1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), dim=-1)

    def reset(self) -> Tensor:
        """Start a new episode in every env; returns the observations ``(*batch_shape, 3)``."""
        self.state = self._initial_states()
        self.elapsed_steps = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)
        return self.observe(self.state)

    def _check_actions(self, actions: Tensor, check_values: bool) -> None:
        check_action_tensor(actions, (*self.batch_shape, self.action_size), self.device, discrete=False)
        if check_values and not bool(torch.isfinite(actions).all()):
            raise ValueError("actions must be finite (a NaN or infinite torque would corrupt the state)")

    def step(self, actions: Tensor, *, check_actions: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Advance every env by one step of 0.05 s, resetting the envs whose episode ends.

        Args:
            actions: floating ``(*batch_shape, 1)``, the torque; values outside ``[-2, 2]`` are
                clipped, as in Gymnasium. They are converted to ``dtype``.
            check_actions: check that every action is finite. This reads the values on the host
                (a device synchronisation on CUDA); pass ``False`` in hot loops. Shape, dtype and
                device are always checked (that needs no synchronisation).

        Returns:
            ``(next_obs, rewards, terminated, truncated, final_obs)``:

            * ``final_obs`` ``(*batch_shape, 3)``: the observation of the state the step reached,
              before any reset -- the one to bootstrap from after a truncation;
            * ``next_obs`` ``(*batch_shape, 3)``: the observation the policy sees next:
              ``final_obs`` where the episode goes on, a fresh initial state's where it ended;
            * ``rewards`` ``(*batch_shape,)`` of ``dtype``: ``-(θ² + 0.1·θ̇² + 0.001·u²)``, in
              ``[-16.2736, 0]``;
            * ``terminated`` bool ``(*batch_shape,)``: always ``False`` (the task never ends);
            * ``truncated`` bool ``(*batch_shape,)``: the episode reached 200 steps.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        self._check_actions(actions, check_actions)
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
        return self.observe(self.state), -costs, terminated, truncated, self.observe(reached)
