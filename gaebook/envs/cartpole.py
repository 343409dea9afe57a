"""CartPole-v1 as a batch of tensors: Gymnasium's classic control task, vectorised in torch.

:class:`CartPole` runs any number of independent copies of Gymnasium's ``CartPole-v1`` at once,
on any device, with one whole-batch tensor op per line of the dynamics. It matches Gymnasium's
``CartPoleEnv`` wrapped in ``TimeLimit(max_episode_steps=500)``:

* the same constants (gravity 9.8, cart mass 1.0, pole mass 0.1, half-length 0.5, force 10.0,
  time step 0.02) and the same explicit Euler step, written in the same order;
* the same termination (``|x| > 2.4`` or ``|theta| > 12°``) and reward (``+1`` for every step,
  the terminating one included, as with the default ``sutton_barto_reward=False``);
* the same initial states (each of the four coordinates uniform in ``[-0.05, 0.05)``);
* truncation when an episode reaches 500 steps without terminating;
* same-step autoreset, like Gymnasium's ``AutoresetMode.SAME_STEP``: ``step`` returns both the
  observation the step reached (``final_obs``, to bootstrap from) and the one the policy sees
  next (``next_obs``, a fresh initial state where an episode ended); see
  :class:`gaebook.envs.VectorEnv`.

Deliberate differences:

* **Float dtype.** Gymnasium computes in float64 and returns the state rounded to float32.
  Here the state *is* the observation and is kept in ``dtype``: ``torch.float64`` reproduces
  Gymnasium's trajectories to rounding error, the default ``torch.float32`` computes in float32
  throughout (its trajectories drift from Gymnasium's by float32 rounding errors).
* **Termination and truncation together.** If an episode terminates on its 500th step,
  Gymnasium's ``TimeLimit`` reports ``terminated=True`` *and* ``truncated=True``; here
  ``truncated`` is ``False`` then, so the two flags never overlap (termination wins, as it must
  for bootstrapping).
* **Random numbers.** Initial states come from the ``torch.Generator`` passed in, not from
  NumPy, so the same seed gives different (equally distributed) episodes than Gymnasium.

The checks of arguments and actions, and the rule that ``step`` synchronises with the device
only when ``check_actions=True`` asks it to check the action values, are those of
:class:`gaebook.envs.TensorEnv`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gaebook.envs.base import StepResult, TensorEnv

__all__ = ["CartPole"]


class CartPole(TensorEnv):
    """A batch of independent CartPole-v1 environments as tensors, on any device.

    Shapes: ``batch_shape`` is a tuple of leading dims, e.g. ``(n_agents, n_envs)``; the state
    and observations are ``(*batch_shape, 4)`` with coordinates ``(x, x_dot, theta, theta_dot)``.
    Actions are long ``(*batch_shape,)`` in ``{0, 1}``: 0 pushes the cart left, 1 pushes it right.

    A step lasts 0.02 s and pays 1 in every env. ``terminated``: the pole fell or the cart left the
    track; ``truncated``: the episode reached 500 steps without terminating.

    Attributes:
        state: ``(*batch_shape, 4)`` current observation of every env (set by :meth:`reset`).
            It may be overwritten, e.g. to start from given states.
        elapsed_steps: long ``(*batch_shape,)`` steps taken so far in each env's episode.

    Example::

        env = CartPole((8,), generator=torch.Generator().manual_seed(0))
        obs = env.reset()
        obs, rewards, terminated, truncated, final_obs = env.step(torch.zeros(8, dtype=torch.long))
    """

    observation_size = 4
    n_actions = 2
    max_episode_steps = 500

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02  # seconds per step (explicit Euler)
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    reset_bounds = (0.05, 0.05, 0.05, 0.05)  # each coordinate starts uniform in [-bound, bound)

    state: Tensor

    def __init__(
        self,
        batch_shape: tuple[int, ...],
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Args:
        batch_shape: leading dims of the batch, a tuple of positive ints (``()`` is one env).
        generator: the source of all randomness (initial states); must live on ``device``.
        device: where the tensors live; defaults to the generator's device.
        dtype: floating dtype of states, observations and rewards.
        """
        super().__init__(batch_shape, generator=generator, device=device, dtype=dtype)
        # Made once: a tensor built from Python numbers on every draw would be a blocking copy on CUDA.
        self._reset_bounds = torch.tensor(self.reset_bounds, dtype=dtype, device=self.device)
        self.elapsed_steps = torch.zeros(batch_shape, dtype=torch.long, device=self.device)

    def _initial_states(self) -> Tensor:
        """Fresh initial states ``(*batch_shape, 4)``, uniform in ``[-0.05, 0.05)``, for all envs."""
        u = torch.rand((*self.batch_shape, 4), generator=self.generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self._reset_bounds

    def _reset(self) -> Tensor:
        self.state = self._initial_states()
        self.elapsed_steps = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)
        return self.state.clone()

    def _step(self, actions: Tensor) -> StepResult:
        _, x_dot, theta, theta_dot = self.state.unbind(-1)
        force = self.force_mag * (2 * actions.to(self.dtype) - 1)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)

        # The same expressions, in the same order, as Gymnasium's CartPoleEnv.step.
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # Explicit Euler on all four coordinates at once: x += tau * x_dot, x_dot += tau * xacc, ...
        final_obs = self.state + self.tau * torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=-1)

        x, theta = final_obs[..., 0], final_obs[..., 2]
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        elapsed = self.elapsed_steps + 1
        truncated = (elapsed >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        rewards = torch.ones(self.batch_shape, dtype=self.dtype, device=self.device)

        # Same-step autoreset: draw initial states for every env (no host sync), keep them where done.
        self.state = torch.where(done.unsqueeze(-1), self._initial_states(), final_obs)
        self.elapsed_steps = torch.where(done, 0, elapsed)
        return StepResult(self.state.clone(), rewards, terminated, truncated, final_obs)
