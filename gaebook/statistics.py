"""Summaries over seeds: the mean, its standard error and its Student-t interval.

The chapters run every experiment on a handful of seeds (3 to 8). With so few, the normal
quantile 1.96 understates a 95 % interval (the t quantile for 3 seeds is 4.30), so every interval in
the book is a Student-t interval with the number of seeds stated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["carry_forward", "mean_se", "t_interval", "t_quantile"]


def _check(x: Tensor, dim: int) -> int:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (the seeds)")
    n = x.shape[dim]
    if n < 2:
        raise ValueError(f"x needs at least 2 seeds along dim {dim} for a spread; got {n}")
    return n


def mean_se(x: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """The mean of ``x`` over the seeds in ``dim`` and its standard error, ``std / sqrt(n)``.

    Shapes: ``x`` is ``(..., n, ...)`` with the ``n ≥ 2`` seeds in ``dim``; both outputs drop ``dim``.
    The standard deviation uses Bessel's correction (``n - 1``).
    """
    n = _check(x, dim)
    return x.mean(dim), x.std(dim) / math.sqrt(n)


def t_quantile(n: int, level: float = 0.95) -> float:
    """The two-sided Student-t multiplier of an interval at ``level`` for the mean of ``n`` seeds.

    ``t_quantile(3) ≈ 4.30``, ``t_quantile(8) ≈ 2.36``; it tends to 1.96 as ``n`` grows.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer of at least 2 (the number of seeds); got {n!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1; got {level!r}")
    from scipy import stats  # the `notebook` extra's: the package itself does not need SciPy

    return float(stats.t.ppf(0.5 + level / 2, df=n - 1))


def t_interval(x: Tensor, dim: int = -1, level: float = 0.95) -> tuple[Tensor, Tensor, Tensor]:
    """The mean over the seeds in ``dim`` with the bounds of its Student-t interval at ``level``.

    Returns ``(mean, lower, upper)``, each of ``x``'s shape without ``dim``, on ``x``'s device.
    """
    n = _check(x, dim)
    mean, se = mean_se(x, dim)
    half = t_quantile(n, level) * se
    return mean, mean - half, mean + half


def carry_forward(curves: Tensor) -> Tensor:
    """Learning curves ``(..., iterations)`` in which an iteration without a value (NaN: no episode
    ended in it) carries the last value before it; leading NaNs stay NaN. Returns a new tensor."""
    if not isinstance(curves, Tensor) or not curves.is_floating_point():
        raise TypeError("curves must be a floating torch.Tensor")
    if curves.dim() == 0:
        raise ValueError("curves must have an iteration dimension (the last)")
    index = torch.arange(curves.shape[-1], device=curves.device).expand_as(curves)
    last_seen = torch.where(curves.isnan(), torch.zeros_like(index), index).cummax(-1).values
    filled = curves.gather(-1, last_seen)
    # Before the first value, index 0 is gathered: keep it NaN when it is one.
    return torch.where((last_seen == 0) & curves[..., :1].isnan(), curves[..., :1], filled)
