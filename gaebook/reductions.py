"""Means over valid positions, and the statistics built on them, in two forms named for what they reduce.

* ``masked_*`` (:func:`masked_mean`, :func:`masked_whiten`, :func:`explained_variance`): one
  statistic for the whole tensor, pooled over every valid position. The language-model trainer
  (:mod:`gaebook.lm.ppo`) uses them: its batch of responses ``(B, T)`` is one sample of tokens.
* ``*_per_agent`` (:func:`mean_per_agent`, :func:`explained_variance_per_agent`): one statistic
  per agent, over every dimension but the first. The classic-control trainer (:mod:`gaebook.ppo`)
  uses them: its ``G`` agents, on a leading dimension, share nothing.

A ``mask`` is a bool tensor of the values' shape, ``True`` at the positions that count (the
tokens of a response, say). Every function runs on its inputs' device and never reads a value
back to the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "explained_variance",
    "explained_variance_per_agent",
    "masked_mean",
    "masked_whiten",
    "mean_per_agent",
]


def _check(name: str, x: object, mask: object, *, per_agent: bool) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor; got {x.dtype}")
    if per_agent and x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (G, ...), agents first and at least one more dimension; got {tuple(x.shape)}"
        )
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor; got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != x.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but {name} has {tuple(x.shape)}")


def _dims(x: Tensor, *, per_agent: bool) -> tuple[int, ...]:
    """The dimensions a reduction runs over: all of them, or all but the agents'."""
    return tuple(range(1 if per_agent else 0, x.ndim))


def _mean(x: Tensor, mask: Tensor | None, dims: tuple[int, ...], *, keepdim: bool = False) -> Tensor:
    if mask is None:
        return x.mean(dim=dims, keepdim=keepdim)
    return (x * mask).sum(dim=dims, keepdim=keepdim) / mask.sum(dim=dims, keepdim=keepdim).clamp_min(1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is ``True``: a 0-d tensor (0 if none is)."""
    _check("x", x, mask, per_agent=False)
    return _mean(x, mask, _dims(x, per_agent=False))


def mean_per_agent(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``x`` ``(G, ...)`` over every dimension but the first: ``(G,)``.

    With ``mask`` only the positions where it is ``True`` count, agent by agent (0 for an agent
    with none).
    """
    _check("x", x, mask, per_agent=True)
    return _mean(x, mask, _dims(x, per_agent=True))


def masked_whiten(x: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(x − mean) / std`` with the statistics of the valid positions only; 0 at masked positions.

    Padding must not enter the statistics: it would pull the mean toward 0 and shrink the
    standard deviation by an amount that depends on how much padding the batch holds. The
    variance is the unbiased one (as TRL's ``masked_whiten``). With ``shift_mean=False`` the mean
    is added back (only the scale changes).

    Args:
        x: floating tensor, e.g. advantages ``(B, T)``.
        mask: bool tensor of the same shape.
        eps: added to the standard deviation.
    """
    mean = masked_mean(x, mask)
    m = mask.to(x.dtype)
    n = m.sum()
    var = (((x - mean) ** 2) * m).sum() / (n - 1).clamp_min(1)
    white = (x - mean) / (var.sqrt() + eps)
    if not shift_mean:
        white = white + mean
    return white.masked_fill(~mask, 0.0)


def _explained_variance(predictions: Tensor, targets: Tensor, mask: Tensor | None, *, per_agent: bool) -> Tensor:
    """``1 − Var(targets − predictions) / Var(targets)``, NaN where the targets do not vary."""
    for name, x in (("predictions", predictions), ("targets", targets)):
        _check(name, x, mask, per_agent=per_agent)
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions has shape {tuple(predictions.shape)} but targets has {tuple(targets.shape)}")
    dims = _dims(targets, per_agent=per_agent)

    def variance(y: Tensor) -> Tensor:
        return _mean((y - _mean(y, mask, dims, keepdim=True)) ** 2, mask, dims)

    # "do not vary" is decided exactly: the computed variance of equal numbers need not be 0
    valid = torch.ones_like(targets, dtype=torch.bool) if mask is None else mask
    highest = targets.masked_fill(~valid, -torch.inf).amax(dim=dims)
    lowest = targets.masked_fill(~valid, torch.inf).amin(dim=dims)
    ratio = variance(targets - predictions) / variance(targets)
    return torch.where(highest > lowest, 1 - ratio, torch.nan)


def explained_variance(predictions: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """How much of the variance of ``targets`` the ``predictions`` explain, over all valid positions.

    ``1 − Var(targets − predictions) / Var(targets)``, the variances taken over every position
    (where ``mask`` is ``True``, if given) as one sample: 1 for exact predictions, 0 for a constant
    one at the targets' mean, negative for worse. The normalisation of the variances (``n`` or
    ``n − 1``) cancels in the ratio. It is NaN when the targets do not vary (all equal, or no
    valid position): then there is no variance to explain.

    Args:
        predictions: floating, e.g. the critic's values ``(B, T)``.
        targets: floating of the same shape, e.g. the critic's targets.
        mask: optional bool of the same shape.

    Returns:
        A 0-d tensor.
    """
    return _explained_variance(predictions, targets, mask, per_agent=False)


def explained_variance_per_agent(predictions: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """:func:`explained_variance` of each agent: the variances over every dimension but the first.

    Args:
        predictions: floating ``(G, ...)``, e.g. each agent's values of its batch ``(G, N)``.
        targets: floating of the same shape.
        mask: optional bool of the same shape.

    Returns:
        ``(G,)``; NaN for an agent whose targets do not vary.
    """
    return _explained_variance(predictions, targets, mask, per_agent=True)
