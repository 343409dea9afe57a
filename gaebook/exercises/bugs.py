"""The silent bugs of real advantage code, as functions that run and return wrong numbers.

Each function has the signature of the function a reader writes for one checker of
:mod:`gaebook.exercises.checks`, and makes one mistake found in published code or posts; the
checkers compare a reader's output with these to name the mistake, and the book's gallery page
(``book/silent_bugs.ipynb``) runs them next to the right answer. Everything is time last,
``(N, T)``, as in :mod:`gaebook.advantages`; the loops run over time on whole batches, as CleanRL's
does, and keep the inputs' dtype and device.

By the reader's function they model:

* GAE, ``fn(rewards, values, next_values, terminated, truncated, *, gamma, lam) -> (advantages,
  returns)``: :func:`gae_seed000_exponent`, :func:`gae_returns_never_computed`,
  :func:`gae_monte_carlo_targets`, :func:`gae_truncation_as_termination`,
  :func:`gae_crosses_episode_end`, :func:`gae_ignores_truncation`,
  :func:`gae_bootstraps_after_termination`;
* λ-returns, ``fn(rewards, next_values, terminated, truncated, *, gamma, lam) -> returns``:
  :func:`lambda_returns_monte_carlo`, :func:`lambda_returns_truncation_as_termination`,
  :func:`lambda_returns_ignore_truncation`, :func:`lambda_returns_bootstrap_after_termination`;
* masked token GAE, ``fn(rewards, values, mask, *, gamma, lam) -> advantages``:
  :func:`token_gae_through_mask`;
* masked whitening, ``fn(x, mask) -> whitened``: :func:`whiten_over_padding`,
  :func:`whiten_per_row`, :func:`whiten_biased_variance`;
* the PPO clipped loss, ``fn(log_probs, old_log_probs, advantages, *, clip_coef) -> loss``:
  :func:`ppo_min_of_losses`, :func:`ppo_inverted_ratio`, :func:`ppo_objective_not_loss`,
  :func:`ppo_no_clip`;
* GRPO advantages, ``fn(rewards, group_size) -> advantages``: :func:`grpo_over_batch`,
  :func:`grpo_wrong_axis`, :func:`grpo_no_eps`, :func:`grpo_biased_std`;
* GAE on a rollout of Gymnasium's ``NEXT_STEP`` autoreset, ``fn(rewards, values, terminated,
  truncated, last_value, *, gamma, lam) -> advantages``: :func:`next_step_trains_on_autoreset`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gaebook.advantages import discounted_returns, gae

__all__ = [
    "gae_bootstraps_after_termination",
    "gae_crosses_episode_end",
    "gae_ignores_truncation",
    "gae_monte_carlo_targets",
    "gae_returns_never_computed",
    "gae_seed000_exponent",
    "gae_truncation_as_termination",
    "grpo_biased_std",
    "grpo_no_eps",
    "grpo_over_batch",
    "grpo_wrong_axis",
    "lambda_returns_bootstrap_after_termination",
    "lambda_returns_ignore_truncation",
    "lambda_returns_monte_carlo",
    "lambda_returns_truncation_as_termination",
    "next_step_trains_on_autoreset",
    "ppo_inverted_ratio",
    "ppo_min_of_losses",
    "ppo_no_clip",
    "ppo_objective_not_loss",
    "token_gae_through_mask",
    "whiten_biased_variance",
    "whiten_over_padding",
    "whiten_per_row",
]


def _float(flags: Tensor, like: Tensor) -> Tensor:
    return flags.to(like.dtype)


def _trace(deltas: Tensor, decay: Tensor) -> Tensor:
    """``A_t = δ_t + decay_t·A_{t+1}`` backwards over the last dimension, ``A_T = 0``: the loop of every bug."""
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[..., 0])
    for t in reversed(range(deltas.shape[-1])):
        running = deltas[..., t] + decay[..., t] * running
        advantages[..., t] = running
    return advantages


# --- GAE with episode ends -------------------------------------------------------------------


def gae_seed000_exponent(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Seed 000's formula, ``A_t = δ_t + … + (γλ)^{T−t+1} δ_{T−1}``: the last residual of each episode
    is weighted too little, ``(γλ)²`` times its weight (its exponent is two too large; the right one is
    ``T−t−1``)."""
    done = _float(terminated | truncated, rewards)
    deltas = rewards + gamma * (1 - _float(terminated, rewards)) * next_values - values
    last = done.clone()
    last[..., -1] = 1  # the last residual of each episode: at its end, or at the end of the rollout
    deltas = deltas * (1 + last * ((gamma * lam) ** 2 - 1))
    advantages = _trace(deltas, gamma * lam * (1 - done))
    return advantages, advantages + values


def gae_returns_never_computed(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Seed 000's code: right advantages, and a ``returns`` buffer that is created and never filled."""
    returns = torch.zeros_like(rewards)
    advantages, _ = gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
    return advantages, returns


def gae_monte_carlo_targets(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Seed 003's critic targets: right advantages, but returns summed from the rewards alone, with
    no bootstrap at a truncation or at the end of the rollout, instead of the λ-return."""
    advantages, _ = gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
    return advantages, discounted_returns(rewards, terminated, truncated, gamma=gamma)


def gae_truncation_as_termination(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """CleanRL issue #198: ``next_done = terminated | truncated`` also removes the bootstrap, so a
    time-out is treated as a terminal state."""
    next_nonterminal = 1 - _float(terminated | truncated, rewards)
    deltas = rewards + gamma * next_values * next_nonterminal - values
    advantages = _trace(deltas, gamma * lam * next_nonterminal)
    return advantages, advantages + values


def gae_crosses_episode_end(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Right residuals, but a trace ``A_t = δ_t + γλ·A_{t+1}`` that runs on into the next episode."""
    deltas = rewards + gamma * (1 - _float(terminated, rewards)) * next_values - values
    advantages = _trace(deltas, torch.full_like(deltas, gamma * lam))
    return advantages, advantages + values


def gae_ignores_truncation(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``truncated`` left unused: the bootstrap is right, but the trace runs on past a time-out."""
    alive = 1 - _float(terminated, rewards)
    deltas = rewards + gamma * alive * next_values - values
    advantages = _trace(deltas, gamma * lam * alive)
    return advantages, advantages + values


def gae_bootstraps_after_termination(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """The trace is cut at every episode end, but ``γ·V(s_{t+1})`` is added even after termination."""
    deltas = rewards + gamma * next_values - values
    advantages = _trace(deltas, gamma * lam * (1 - _float(terminated | truncated, rewards)))
    return advantages, advantages + values


# --- λ-returns -------------------------------------------------------------------------------


def _lambda_trace(
    rewards: Tensor, next_values: Tensor, bootstrap: Tensor, cut: Tensor, gamma: float, lam: float
) -> Tensor:
    """``G_t = r_t + γ·b_t·[(1 − λ·c_t)·V_{t+1}] + γλ·c_t·G_{t+1}`` with ``c = 1 − cut`` (0 at the last step)."""
    goes_on = 1 - _float(cut, rewards)
    goes_on[..., -1] = 0
    base = rewards + gamma * _float(bootstrap, rewards) * (1 - lam * goes_on) * next_values
    return _trace(base, gamma * lam * goes_on)


def lambda_returns_monte_carlo(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, *, gamma: float, lam: float
) -> Tensor:
    """Monte Carlo returns as critic targets (seed 003): rewards summed to each episode's end, the critic never read."""
    return discounted_returns(rewards, terminated, truncated, gamma=gamma)


def lambda_returns_truncation_as_termination(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, *, gamma: float, lam: float
) -> Tensor:
    """CleanRL #198 in the critic's target: no bootstrap at a time-out."""
    done = terminated | truncated
    return _lambda_trace(rewards, next_values, ~done, done, gamma, lam)


def lambda_returns_ignore_truncation(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, *, gamma: float, lam: float
) -> Tensor:
    """``truncated`` left unused: the return runs on past a time-out into the next episode."""
    return _lambda_trace(rewards, next_values, ~terminated, terminated, gamma, lam)


def lambda_returns_bootstrap_after_termination(
    rewards: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor, *, gamma: float, lam: float
) -> Tensor:
    """The value of a terminal state counted: ``γ·V(s_{t+1})`` added after termination."""
    return _lambda_trace(rewards, next_values, torch.ones_like(terminated), terminated | truncated, gamma, lam)


# --- masked token GAE ------------------------------------------------------------------------


def token_gae_through_mask(rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float, lam: float) -> Tensor:
    """Token GAE that treats every position as a step: ``δ_t`` bootstraps from ``values[t + 1]`` even
    where that is a tool token or padding, and the trace is discounted across them; masked
    positions are zeroed only at the end."""
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = rewards + gamma * next_values - values
    return _trace(deltas, torch.full_like(deltas, gamma * lam)) * mask


# --- masked whitening ------------------------------------------------------------------------


def whiten_over_padding(x: Tensor, mask: Tensor) -> Tensor:
    """``(x − x.mean()) / x.std()`` over every position, padding included, then the padding zeroed."""
    return ((x - x.mean()) / (x.std() + 1e-8)) * mask


def whiten_per_row(x: Tensor, mask: Tensor) -> Tensor:
    """Whitening with each row's own mean and standard deviation (over its valid positions) instead of
    the batch's: every response's advantages then average to zero, whatever its score."""
    m = _float(mask, x)
    n = m.sum(-1, keepdim=True)
    mean = (x * m).sum(-1, keepdim=True) / n.clamp_min(1)
    var = ((x - mean) ** 2 * m).sum(-1, keepdim=True) / (n - 1).clamp_min(1)
    return (x - mean) / (var.sqrt() + 1e-8) * m


def whiten_biased_variance(x: Tensor, mask: Tensor) -> Tensor:
    """Masked whitening with the variance divided by ``n`` instead of ``n − 1``."""
    m = _float(mask, x)
    n = m.sum()
    mean = (x * m).sum() / n.clamp_min(1)
    var = ((x - mean) ** 2 * m).sum() / n.clamp_min(1)
    return (x - mean) / (var.sqrt() + 1e-8) * m


# --- the PPO clipped loss --------------------------------------------------------------------


def ppo_min_of_losses(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """The optimistic bound: the smaller of the two losses, where PPO takes the larger (the smaller objective)."""
    ratio = (log_probs - old_log_probs).exp()
    return torch.min(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def ppo_inverted_ratio(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """The ratio upside down, ``π_old/π``."""
    ratio = (old_log_probs - log_probs).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def ppo_objective_not_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """The clipped objective, to be maximised, returned where a loss to minimise is expected."""
    ratio = (log_probs - old_log_probs).exp()
    return torch.min(advantages * ratio, advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def ppo_no_clip(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """The unclipped surrogate ``−A·r``."""
    return (-advantages * (log_probs - old_log_probs).exp()).mean()


# --- GRPO advantages -------------------------------------------------------------------------


def grpo_over_batch(rewards: Tensor, group_size: int) -> Tensor:
    """Normalised with the mean and standard deviation of the whole batch, not of each prompt's group."""
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


def grpo_wrong_axis(rewards: Tensor, group_size: int) -> Tensor:
    """Groups read along the wrong axis: ``view(group_size, -1)`` puts the i-th answer of every prompt
    in one column, so each answer is compared with other prompts' answers."""
    r = rewards.view(group_size, -1)
    return ((r - r.mean(0)) / (r.std(0) + 1e-4)).reshape(-1)


def grpo_no_eps(rewards: Tensor, group_size: int) -> Tensor:
    """No ``eps`` under the standard deviation: a group of identical scores gives 0/0 = NaN."""
    r = rewards.view(-1, group_size)
    return ((r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True)).reshape(-1)


def grpo_biased_std(rewards: Tensor, group_size: int) -> Tensor:
    """The group's population standard deviation (divided by ``G``) instead of the sample one (``G − 1``)."""
    r = rewards.view(-1, group_size)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, correction=0) + 1e-4)).reshape(-1)


# --- Gymnasium's NEXT_STEP autoreset ---------------------------------------------------------


def next_step_trains_on_autoreset(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    last_value: Tensor,
    *,
    gamma: float,
    lam: float,
) -> Tensor:
    """GAE over every row of a ``NEXT_STEP`` rollout, the autoreset step included: the step after an
    episode end, whose action the environment ignored, gets an advantage and is trained on."""
    next_values = torch.cat([values[..., 1:], last_value.unsqueeze(-1)], dim=-1)
    return gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)[0]
