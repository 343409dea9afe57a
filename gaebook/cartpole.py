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
* same-step autoreset, like Gymnasium's ``AutoresetMode.SAME_STEP``: :meth:`CartPole.step`
  returns both the observation the step reached (``final_obs``, to bootstrap from) and the one
  the policy sees next (``next_obs``, a fresh initial state where an episode ended).

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

``step`` never moves data to the host (no ``.item()``, no Python ``if`` on a tensor) unless
``check_actions=True`` (the default) asks it to check the action values, so a loop of steps
on CUDA runs without synchronisation when called with ``check_actions=False``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gaebook.env_checks import check_action_tensor, check_batch_args

__all__ = ["CartPole"]


class CartPole:
    """A batch of independent CartPole-v1 environments as tensors, on any device.

    Shapes: ``batch_shape`` is a tuple of leading dims, e.g. ``(n_agents, n_envs)``; the state
    and observations are ``(*batch_shape, 4)`` with coordinates ``(x, x_dot, theta, theta_dot)``.

    Attributes:
        state: ``(*batch_shape, 4)`` current observation of every env (``None`` before
            :meth:`reset`). It may be overwritten, e.g. to start from given states.
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
    reset_bound = 0.05

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
        device = check_batch_args(batch_shape, generator, device, dtype)
        self.batch_shape = batch_shape
        self.generator = generator
        self.device = device
        self.dtype = dtype
        self.state: Tensor | None = None
        self.elapsed_steps = torch.zeros(batch_shape, dtype=torch.long, device=device)

    def _initial_states(self) -> Tensor:
        """Fresh initial states ``(*batch_shape, 4)``, uniform in ``[-0.05, 0.05)``, for all envs."""
        u = torch.rand((*self.batch_shape, 4), generator=self.generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self.reset_bound

    def reset(self) -> Tensor:
        """Start a new episode in every env; returns the observations ``(*batch_shape, 4)``."""
        self.state = self._initial_states()
        self.elapsed_steps = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)
        return self.state.clone()

    def _check_actions(self, actions: Tensor, check_values: bool) -> None:
        check_action_tensor(actions, self.batch_shape, self.device, discrete=True)
        if check_values and bool(((actions < 0) | (actions >= self.n_actions)).any()):
            raise ValueError("actions must be 0 (push left) or 1 (push right)")

    def step(self, actions: Tensor, *, check_actions: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Advance every env by one step of 0.02 s, resetting the envs whose episode ends.

        Args:
            actions: integer (long) ``(*batch_shape,)`` in ``{0, 1}``: 0 pushes the cart left,
                1 pushes it right.
            check_actions: check that every action is 0 or 1. This reads the values on the
                host (a device synchronisation on CUDA); pass ``False`` in hot loops. Shape,
                dtype and device are always checked (that needs no synchronisation).

        Returns:
            ``(next_obs, rewards, terminated, truncated, final_obs)``:

            * ``final_obs`` ``(*batch_shape, 4)``: the observation the step reached, before any
              reset -- the one to bootstrap from after a truncation;
            * ``next_obs`` ``(*batch_shape, 4)``: the observation the policy sees next:
              ``final_obs`` where the episode goes on, a fresh initial state where it ended;
            * ``rewards`` ``(*batch_shape,)`` of ``dtype``: 1 for every step;
            * ``terminated`` bool ``(*batch_shape,)``: the pole fell or the cart left the track;
            * ``truncated`` bool ``(*batch_shape,)``: the episode reached 500 steps without
              terminating.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        self._check_actions(actions, check_actions)
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
        return self.state.clone(), rewards, terminated, truncated, final_obs
