"""Catch as a batch of tensors: a small game whose only reward comes at the end.

A ball falls from a random column of the top row, one row per step; a paddle on the bottom row
moves one column left, stays, or moves one column right on every step. When the ball reaches
the bottom row the episode terminates with reward ``+1`` if the paddle is under it and ``-1``
otherwise; every other step pays 0. An episode lasts exactly ``rows - 1`` steps, so the reward
for the first moves arrives ``rows - 1`` steps late: a test of credit assignment.

The rules are those of ``catch`` in DeepMind's Behaviour Suite (bsuite): a ``rows × columns``
board (10 × 5 there), the paddle starting in column ``columns // 2``, moves clipped at the
walls, and the observation is the board itself, 1 at the ball and at the paddle and 0
elsewhere, flattened here to ``rows * columns`` numbers for an MLP. Wider boards make early
moves matter: from the middle, a ball in a far column is caught only if the paddle starts
moving almost at once.

:class:`Catch` runs any number of games at once, on any device, with same-step autoreset, like
:class:`gaebook.envs.CartPole`: ``step`` returns the board the step reached (``final_obs``) and
the one the policy sees next (``next_obs``, a new game where one ended). Its checks of arguments
and actions are those of :class:`gaebook.envs.TensorEnv`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gaebook.envs.base import StepResult, TensorEnv

__all__ = ["Catch"]


class Catch(TensorEnv):
    """A batch of independent games of Catch as tensors, on any device.

    Shapes: ``batch_shape`` is a tuple of leading dims, e.g. ``(n_agents, n_envs)``; observations
    are ``(*batch_shape, rows * columns)``, actions long ``(*batch_shape,)`` in ``{0, 1, 2}``
    (left, stay, right).

    Every step but the last of a game pays 0; the last, when the ball reaches the bottom row,
    pays ``+1`` if the paddle is under it and ``-1`` otherwise, and is ``terminated``. A game lasts
    exactly ``max_episode_steps = rows - 1`` steps; ``truncated`` is always ``False``.

    Attributes:
        ball_row, ball_column, paddle_column: long ``(*batch_shape,)``, the positions (set by
            :meth:`reset`). They may be overwritten, e.g. to start from given positions.

    Example::

        env = Catch((8,), generator=torch.Generator().manual_seed(0))
        obs = env.reset()
        obs, rewards, terminated, truncated, final_obs = env.step(torch.ones(8, dtype=torch.long))
    """

    n_actions = 3

    ball_row: Tensor
    ball_column: Tensor
    paddle_column: Tensor

    def __init__(
        self,
        batch_shape: tuple[int, ...],
        *,
        generator: torch.Generator,
        rows: int = 10,
        columns: int = 5,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Args:
        batch_shape: leading dims of the batch, a tuple of positive ints (``()`` is one game).
        generator: the source of all randomness (the ball's columns); must live on ``device``.
        rows, columns: the board's size, at least 2 × 1 (bsuite's default is 10 × 5).
        device: where the tensors live; defaults to the generator's device.
        dtype: floating dtype of observations and rewards.
        """
        for name, value, least in (("rows", rows, 2), ("columns", columns, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int; got {type(value).__name__}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}; got {value}")
        super().__init__(batch_shape, generator=generator, device=device, dtype=dtype)
        self.rows, self.columns = rows, columns
        self.observation_size = rows * columns
        self.max_episode_steps = rows - 1

    def _new_games(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(ball_row, ball_column, paddle_column)`` of fresh games: ball on top, in a uniform column."""
        column = torch.randint(self.columns, self.batch_shape, generator=self.generator, device=self.device)
        top = torch.zeros(self.batch_shape, dtype=torch.long, device=self.device)
        return top, column, torch.full_like(top, self.columns // 2)

    def board(self, ball_row: Tensor, ball_column: Tensor, paddle_column: Tensor) -> Tensor:
        """The flattened board ``(..., rows * columns)``: 1 at the ball and at the paddle, 0 elsewhere."""
        shape = ball_row.shape
        out = torch.zeros((*shape, self.observation_size), dtype=self.dtype, device=self.device)
        out.scatter_(-1, (ball_row * self.columns + ball_column).unsqueeze(-1), 1.0)
        out.scatter_(-1, ((self.rows - 1) * self.columns + paddle_column).unsqueeze(-1), 1.0)
        return out

    def _reset(self) -> Tensor:
        self.ball_row, self.ball_column, self.paddle_column = self._new_games()
        return self.board(self.ball_row, self.ball_column, self.paddle_column)

    def _step(self, actions: Tensor) -> StepResult:
        paddle = (self.paddle_column + actions - 1).clamp(0, self.columns - 1)
        ball_row = self.ball_row + 1
        final_obs = self.board(ball_row, self.ball_column, paddle)
        terminated = ball_row == self.rows - 1
        caught = (paddle == self.ball_column).to(self.dtype)
        rewards = torch.where(terminated, 2 * caught - 1, torch.zeros_like(caught))

        # Same-step autoreset: draw new games everywhere (no host sync), keep them where a game ended.
        new_row, new_column, new_paddle = self._new_games()
        self.ball_row = torch.where(terminated, new_row, ball_row)
        self.ball_column = torch.where(terminated, new_column, self.ball_column)
        self.paddle_column = torch.where(terminated, new_paddle, paddle)
        next_obs = self.board(self.ball_row, self.ball_column, self.paddle_column)
        return StepResult(next_obs, rewards, terminated, torch.zeros_like(terminated), final_obs)
