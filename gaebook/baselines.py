"""GAE as other libraries write it, transcribed for side-by-side comparison.

These are the loops a reader meets in the wild, and the associative-scan formulation of JAX code.
The book and ``benchmarks/gae_kernels.py`` run them on the same data as :func:`gaebook.gae` to
show that the results agree and to measure their cost. Each keeps its library's layout and
conventions, and its docstring names the release or commit it was transcribed from (the book's
test ``tests/book/test_library_versions.py`` checks the versions the book names against these
headers). (TorchRL's estimators are not transcribed: the benchmark imports the library.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["associative_scan_gae", "cleanrl_gae", "discount_cumsum", "masked_token_gae", "sb3_gae"]


def sb3_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Stable-Baselines3's ``RolloutBuffer.compute_returns_and_advantage`` (NumPy, time-major).

    Transcribed from Stable-Baselines3 2.9.2, ``stable_baselines3/common/buffers.py``; chapter 7
    checks it against the installed library's own buffer.

    All arrays are ``(T, N)`` except ``last_values`` and ``dones`` (``(N,)``, the state after the
    last step). ``episode_starts[t]`` marks that ``s_t`` began an episode, so step ``t`` ended one
    when ``episode_starts[t + 1]`` is set. SB3 has no truncation flag: it folds the time-limit
    bootstrap ``γ·V(final observation)`` into the reward while collecting.
    """
    buffer_size = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    last_gae_lam = 0
    for step in reversed(range(buffer_size)):
        if step == buffer_size - 1:
            next_non_terminal = 1.0 - dones.astype(np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam
        advantages[step] = last_gae_lam
    return advantages, advantages + values


def cleanrl_gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    next_value: Tensor,
    next_done: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """CleanRL ``ppo.py``'s loop: time-major ``(T, N)`` tensors, ``dones[t]`` marks that ``s_t`` began an episode.

    Transcribed from CleanRL's ``cleanrl/ppo.py`` at commit fe8d8a03c41a (vwxyzjn/cleanrl, CleanRL
    2.0.0b1), a script written for Gymnasium 0.29.1, the version CleanRL pins.

    ``next_value`` and ``next_done`` are ``(N,)`` for the state after the last step.
    """
    num_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam: Tensor | float = 0
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - next_done
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - dones[t + 1]
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
    return advantages, advantages + values


def masked_token_gae(
    token_level_rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """verl's token loop for multi-turn rollouts: ``(B, L)``, batch first.

    Transcribed from verl 0.9.1, ``verl/trainer/ppo/core_algos.py``,
    ``compute_gae_advantage_return`` without its final ``masked_whiten`` of the advantages.

    Masked tokens (``response_mask`` 0, a float tensor) are skipped: the trace and the next value
    pass over them. Entries at masked tokens are left as the loop leaves them (callers mask them).
    """
    nextvalues: Tensor | float = 0
    lastgaelam: Tensor | float = 0
    advantages_reversed: list[Tensor] = []
    gen_len = token_level_rewards.shape[-1]
    for t in reversed(range(gen_len)):
        delta = token_level_rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam_ = delta + gamma * lam * lastgaelam
        nextvalues = values[:, t] * response_mask[:, t] + (1 - response_mask[:, t]) * nextvalues
        lastgaelam = lastgaelam_ * response_mask[:, t] + (1 - response_mask[:, t]) * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    return advantages, advantages + values


def associative_scan_gae(
    rewards: Tensor, values: Tensor, next_values: Tensor, dones: Tensor, gamma: float, gae_lambda: float
) -> tuple[Tensor, Tensor]:
    """GAE as JAX code writes it with ``jax.lax.associative_scan(..., reverse=True)``: time-major ``(T, N)``.

    Each step is the affine map ``A ↦ δ_t + γλ(1 − done_t)·A``; the scan composes the maps from the
    end, in O(log T) depth. ``dones[t]`` (a float tensor) marks that the episode ended at ``t``
    (so ``next_values[t]`` is not bootstrapped). Here in torch's prototype
    ``torch._higher_order_ops.associative_scan`` (its ``generic`` mode, which runs eagerly on a
    CPU), the same odd-even recursion as JAX's.
    """
    from torch._higher_order_ops.associative_scan import associative_scan  # a prototype API

    not_done = 1.0 - dones
    deltas = rewards + gamma * next_values * not_done - values

    def compose(later: tuple[Tensor, Tensor], earlier: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        (a_later, b_later), (a, b) = later, earlier
        return a * a_later, b + a * b_later

    _, advantages = associative_scan(
        compose, (gamma * gae_lambda * not_done, deltas), dim=0, reverse=True, combine_mode="generic"
    )
    return advantages, advantages + values


def discount_cumsum(x: np.ndarray, discount: float) -> np.ndarray:
    """Spinning Up's ``core.discount_cumsum`` along the last axis: an IIR filter, no episode ends.

    Transcribed from Spinning Up's ``spinup/algos/pytorch/ppo/core.py`` at commit 038665d62d56
    (openai/spinningup), which filters along axis 0.

    ``y_t = x_t + discount · y_{t+1}``; GAE is ``discount_cumsum(deltas, γλ)`` for one trajectory.
    Needs SciPy.
    """
    import scipy.signal  # an optional dependency: only this comparison uses it

    return scipy.signal.lfilter([1], [1, float(-discount)], x[..., ::-1], axis=-1)[..., ::-1]
