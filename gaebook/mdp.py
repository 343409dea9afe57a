"""Finite MDPs whose values are known exactly, so every estimator in the book can be checked.

A :class:`TabularMDP` holds transition probabilities and rewards as tensors. Its exact
quantities (``state_values``, ``action_values``, ``advantages``, ``objective``) are linear
solves that autograd can differentiate, so the exact policy gradient is one ``backward()``
away. Its :meth:`TabularMDP.rollout` samples batches of experience in the layout that
:mod:`gaebook.advantages` expects (time last, explicit ``terminated``/``truncated``).

On a GPU, :meth:`TabularMDP.rollout` never synchronises with the host. The exact quantities
and the checks made at construction do: they are computed once per policy for analysis, not in
a hot loop (see each method).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Rollout", "TabularMDP", "chain_mdp"]


@dataclass(frozen=True)
class Rollout:
    """A batch of experience, every field of shape ``(n_envs, n_steps)``.

    ``next_states[:, t]`` is the state the step reached *before* any reset, so a critic can
    bootstrap a truncated episode from it; ``states[:, t + 1]`` is the reset state after an
    episode ends.
    """

    states: Tensor
    actions: Tensor
    rewards: Tensor
    next_states: Tensor
    terminated: Tensor
    truncated: Tensor


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite discounted MDP with absorbing, zero-value terminal states.

    Construction checks that the probabilities are probabilities, which reads them from the
    device (a few host synchronisations, once).

    Attributes:
        transitions: ``(S, A, S)``, ``P(s' | s, a)``; each ``[s, a]`` row sums to 1.
        rewards: ``(S, A, S)``, the reward for the transition ``s --a--> s'``.
        terminal: bool ``(S,)``; reaching such a state ends the episode.
        start: ``(S,)`` distribution of the first state (zero on terminal states).
        gamma: discount in [0, 1).
    """

    transitions: Tensor
    rewards: Tensor
    terminal: Tensor
    start: Tensor
    gamma: float

    def __post_init__(self) -> None:
        p = self.transitions
        if p.ndim != 3 or p.shape[0] != p.shape[2]:
            raise ValueError(f"transitions must have shape (S, A, S); got {tuple(p.shape)}")
        s, a, _ = p.shape
        if self.rewards.shape != p.shape:
            raise ValueError(f"rewards must have shape {tuple(p.shape)}; got {tuple(self.rewards.shape)}")
        if self.terminal.shape != (s,) or self.terminal.dtype != torch.bool:
            raise ValueError(f"terminal must be a bool tensor of shape ({s},)")
        if self.start.shape != (s,):
            raise ValueError(f"start must have shape ({s},); got {tuple(self.start.shape)}")
        one = torch.ones((), dtype=p.dtype, device=p.device)
        if not torch.allclose(p.sum(-1), one.expand(s, a)) or bool((p < 0).any()):
            raise ValueError("transitions must be probabilities: non-negative, each [s, a] row summing to 1")
        if not torch.isclose(self.start.sum(), one) or bool((self.start[self.terminal] > 0).any()):
            raise ValueError("start must be a distribution over non-terminal states")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1) for values to be finite; got {self.gamma}")

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]

    def _check_policy(self, policy: Tensor) -> None:
        if not isinstance(policy, Tensor):
            raise TypeError(f"policy must be a tensor of shape (S, A); got {type(policy).__name__}")
        if policy.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"policy must have shape ({self.n_states}, {self.n_actions}), a distribution over "
                f"actions for each state; got {tuple(policy.shape)}"
            )

    def expected_rewards(self) -> Tensor:
        """``r(s, a) = Σ_s' P(s'|s, a)·R(s, a, s')``, shape ``(S, A)``."""
        return (self.transitions * self.rewards).sum(-1)

    def state_values(self, policy: Tensor) -> Tensor:
        """Exact ``V^π`` of shape ``(S,)`` for ``policy`` of shape ``(S, A)``, by a linear solve.

        Solves ``(I − γ P_π) V = r_π`` with terminal rows zeroed, so ``V = 0`` on terminal
        states. Differentiable in ``policy``. ``torch.linalg.solve`` reads back whether the
        matrix was singular: a host synchronisation per call (and per :meth:`action_values`,
        :meth:`advantages` and :meth:`objective`, which call it), fine outside hot loops.
        """
        self._check_policy(policy)
        live = (~self.terminal).to(policy.dtype)
        p_pi = torch.einsum("sa,sat->st", policy, self.transitions) * live[:, None]
        r_pi = (policy * self.expected_rewards()).sum(-1) * live
        eye = torch.eye(self.n_states, dtype=policy.dtype, device=policy.device)
        return torch.linalg.solve(eye - self.gamma * p_pi, r_pi)

    def action_values(self, policy: Tensor) -> Tensor:
        """Exact ``Q^π(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V^π(s')``, shape ``(S, A)``."""
        v = self.state_values(policy)
        return self.expected_rewards() + self.gamma * self.transitions @ v

    def advantages(self, policy: Tensor) -> Tensor:
        """Exact ``A^π(s, a) = Q^π(s, a) − V^π(s)``, shape ``(S, A)``."""
        return self.action_values(policy) - self.state_values(policy)[:, None]

    def objective(self, policy: Tensor) -> Tensor:
        """``J(π) = E_{s_0 ~ start} V^π(s_0)``, a scalar tensor (differentiable)."""
        return self.start @ self.state_values(policy)

    def optimal_policy(self, tol: float = 1e-12, max_iters: int = 100_000) -> Tensor:
        """A deterministic optimal policy ``(S, A)`` (one-hot rows), by value iteration.

        Every iteration reads its convergence test from the device (one host synchronisation per
        iteration); it runs once per MDP, not in a hot loop.
        """
        r = self.expected_rewards()
        v = torch.zeros(self.n_states, dtype=r.dtype, device=r.device)
        for _ in range(max_iters):
            q = r + self.gamma * self.transitions @ (v * ~self.terminal)
            v_new = q.max(-1).values * ~self.terminal
            if bool((v_new - v).abs().max() < tol):
                break
            v = v_new
        return torch.nn.functional.one_hot(q.argmax(-1), self.n_actions).to(r.dtype)

    def rollout(
        self,
        policy: Tensor,
        *,
        n_envs: int,
        n_steps: int,
        generator: torch.Generator,
        time_limit: int | None = None,
        start_states: Tensor | None = None,
        first_actions: Tensor | None = None,
    ) -> Rollout:
        """Run ``n_envs`` copies of the MDP for ``n_steps`` steps each, resetting after episode ends.

        Args:
            policy: ``(S, A)`` action probabilities.
            n_envs, n_steps: batch size and number of steps (the time dimension).
            generator: the source of all randomness, for reproducibility.
            time_limit: if given, an episode that lasts this many steps is truncated.
            start_states: optional long ``(n_envs,)`` states to begin in (else drawn from ``start``).
            first_actions: optional long ``(n_envs,)`` actions forced at the first step.

        Returns:
            A :class:`Rollout`; rewards have the MDP's dtype. Every tensor is on the MDP's device,
            and nothing is read back from it (no host synchronisation).
        """
        self._check_policy(policy)
        if not isinstance(generator, torch.Generator):
            raise TypeError("generator must be a torch.Generator (seed it for reproducibility)")
        for name, n in (("n_envs", n_envs), ("n_steps", n_steps)):
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive int; got {n!r}")
        if time_limit is not None and (not isinstance(time_limit, int) or time_limit < 1):
            raise ValueError(f"time_limit must be a positive int or None; got {time_limit!r}")
        device = self.transitions.device
        # Inverse-CDF sampling: one uniform per draw, compared with cumulative probabilities.
        # All uniforms are drawn up front, so each step costs a few whole-batch tensor ops.
        policy_cdf = policy.detach().cumsum(-1)
        transition_cdf = self.transitions.cumsum(-1)
        start_cdf = self.start.cumsum(-1)
        uniforms = torch.rand(n_steps + 1, 3, n_envs, generator=generator, dtype=policy_cdf.dtype, device=device)

        def draw(cdf: Tensor, u: Tensor) -> Tensor:
            """Index of the first entry of each row of ``cdf`` that reaches ``u``."""
            return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(cdf.shape[-1] - 1)

        n_start = start_cdf.expand(n_envs, -1)
        state = draw(n_start, uniforms[-1, 0]) if start_states is None else start_states.to(device)
        age = torch.zeros(n_envs, dtype=torch.long, device=device)
        fields: dict[str, list[Tensor]] = {k: [] for k in Rollout.__dataclass_fields__}
        for t in range(n_steps):
            u_action, u_next, u_reset = uniforms[t]
            action = draw(policy_cdf[state], u_action)
            if t == 0 and first_actions is not None:
                action = first_actions.to(device)
            next_state = draw(transition_cdf[state, action], u_next)
            age += 1
            terminated = self.terminal[next_state]
            truncated = ~terminated & (age >= (time_limit or n_steps + 1))
            for key, value in zip(
                fields,
                (state, action, self.rewards[state, action, next_state], next_state, terminated, truncated),
                strict=True,
            ):
                fields[key].append(value)
            done = terminated | truncated
            state = torch.where(done, draw(n_start, u_reset), next_state)
            age = torch.where(done, 0, age)
        return Rollout(**{k: torch.stack(v, dim=-1) for k, v in fields.items()})


def chain_mdp(
    n_states: int = 9,
    *,
    slip: float = 0.2,
    gamma: float = 0.95,
    left_reward: float = 0.2,
    right_reward: float = 1.0,
    step_reward: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TabularMDP:
    """A corridor of ``n_states`` cells whose two ends are terminal; the walk starts in the middle.

    Action 0 moves left and action 1 right; with probability ``slip`` the move goes the other
    way. Stepping into the left end pays ``left_reward``, into the right end ``right_reward``,
    and every other step ``step_reward``. The near-sighted choice (the closer, smaller reward on
    the left when the walk starts left of centre) and slip noise make advantages non-trivial.
    """
    if n_states < 3:
        raise ValueError(f"n_states must be at least 3 (two terminal ends and a cell); got {n_states}")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1]; got {slip}")
    s = n_states
    transitions = torch.zeros(s, 2, s, dtype=dtype, device=device)
    rewards = torch.full((s, 2, s), step_reward, dtype=dtype, device=device)
    rewards[:, :, 0] = left_reward
    rewards[:, :, s - 1] = right_reward
    for i in range(1, s - 1):
        transitions[i, 0, i - 1] += 1 - slip
        transitions[i, 0, i + 1] += slip
        transitions[i, 1, i + 1] += 1 - slip
        transitions[i, 1, i - 1] += slip
    for end in (0, s - 1):  # absorbing; never visited by rollouts
        transitions[end, :, end] = 1.0
        rewards[end] = 0.0
    terminal = torch.zeros(s, dtype=torch.bool, device=device)
    terminal[[0, s - 1]] = True
    start = torch.zeros(s, dtype=dtype, device=device)
    start[(s - 1) // 2] = 1.0
    return TabularMDP(transitions, rewards, terminal, start, gamma)
