"""Figure helpers shared by the chapters: one look for every plot in the book."""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["mean_band", "use_book_style"]


def use_book_style() -> None:
    """Set the book's matplotlib defaults (size, grid, fonts) for the rest of the session."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.8),
            "figure.dpi": 110,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "savefig.bbox": "tight",
        }
    )
    plt.close("all")


def mean_band(
    ax: Axes,
    x: np.ndarray | torch.Tensor,
    runs: np.ndarray | torch.Tensor,
    *,
    label: str,
    z: float = 1.96,
    **kwargs: Any,
) -> None:
    """Plot the mean over ``runs`` (shape ``(n_runs, len(x))``) with a ``z``·standard-error band.

    The default ``z = 1.96`` gives an approximate 95% confidence band for the mean.
    """
    runs = np.asarray(runs.detach().cpu() if isinstance(runs, torch.Tensor) else runs, dtype=float)
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
    if runs.ndim != 2 or runs.shape[1] != x.shape[0]:
        raise ValueError(f"runs must have shape (n_runs, {x.shape[0]}); got {runs.shape}")
    mean = runs.mean(0)
    half = z * runs.std(0, ddof=1) / np.sqrt(runs.shape[0]) if runs.shape[0] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=label, **kwargs)
    ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
