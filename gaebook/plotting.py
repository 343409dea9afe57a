"""Figure helpers shared by the chapters: one look, one colour per λ and one interval rule.

- :func:`use_book_style` draws at the width of the book's content column with text of at least
  10 pt as displayed; :func:`figsize` gives the size of a figure of one or two panels side by side.
- :func:`series_style` gives compared series colours from Okabe and Ito's colour-blind-safe palette,
  each with its own marker and line style, so that no comparison rests on colour alone.
- :func:`lam_color` is the colour of a value of λ in every figure of the book.
- :func:`mean_band` draws a mean over seeds with its 95 % Student-t interval, clipped to the range
  the quantity can take, and every seed as a faint line when there are at most eight.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes

from gaebook.statistics import t_interval

__all__ = ["COLUMN_WIDTH", "OKABE_ITO", "figsize", "lam_color", "mean_band", "series_style", "use_book_style"]

# The content column of the book's pages is 785 CSS pixels wide; at the figures' 110 dpi a figure
# this wide in inches is shown at its own size, so its font sizes are the ones a reader sees.
DPI = 110
COLUMN_WIDTH = 785 / DPI
# Okabe and Ito (2008), "Color universal design": distinguishable under every common colour-vision
# deficiency. Yellow is left out: it is too light on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))
# Faint lines for the individual seeds are drawn when there are at most this many.
MAX_SEEDS_DRAWN = 8


def use_book_style() -> None:
    """Set the book's matplotlib defaults (size, grid, fonts) for the rest of the session."""
    mpl.rcParams.update(
        {
            "figure.figsize": figsize(1),
            "figure.dpi": DPI,
            "font.size": 11,
            "axes.titlesize": 11,
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": cycler(color=OKABE_ITO),
            "legend.frameon": False,
            "savefig.bbox": "tight",
        }
    )
    plt.close("all")


def figsize(ncols: int = 1, height: float | None = None) -> tuple[float, float]:
    """The size in inches of a figure of ``ncols`` panels side by side at the column's width.

    At most two panels fit in a row at a legible size: put more in further rows.
    """
    if ncols not in (1, 2):
        raise ValueError(f"ncols must be 1 or 2 (more panels per row are too small to read); got {ncols!r}")
    if height is not None and not height > 0:
        raise ValueError(f"height must be positive; got {height!r}")
    return COLUMN_WIDTH, height if height is not None else (3.6 if ncols == 1 else 3.2)


def series_style(i: int) -> dict[str, Any]:
    """The look of the ``i``-th of several compared series: a colour, a marker and a line style.

    The keys are ``color``, ``marker`` and ``linestyle``: pass them to ``ax.plot(..., **style)``.
    """
    if isinstance(i, bool) or not isinstance(i, int) or i < 0:
        raise ValueError(f"i must be a non-negative integer; got {i!r}")
    if i >= len(OKABE_ITO):
        raise ValueError(f"i must be below {len(OKABE_ITO)}: a figure should compare no more series; got {i}")
    return {"color": OKABE_ITO[i], "marker": _MARKERS[i], "linestyle": _LINESTYLES[i]}


def lam_color(lam: float) -> tuple[float, float, float, float]:
    """The colour of ``lam`` (λ in [0, 1]) in every figure: viridis along the horizon 1 / (1 − λ).

    The position on the colour map is log10(1 / (1 − λ)) / 2, capped at 1 (λ ≥ 0.99 and λ = 1
    share the end of the map): λ = 0, 0.5, 0.9, 0.95 sit at 0, 0.15, 0.5 and 0.65. The map's last
    tenth (a yellow too light on white) is not used.
    """
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1]; got {lam!r}")
    position = 1.0 if lam >= 0.99 else min(1.0, -math.log10(1.0 - lam) / 2)
    return tuple(mpl.colormaps["viridis"](0.9 * position))  # type: ignore[return-value]


def mean_band(
    ax: Axes,
    x: np.ndarray | torch.Tensor,
    runs: np.ndarray | torch.Tensor,
    *,
    label: str,
    bounds: tuple[float | None, float | None] = (None, None),
    level: float = 0.95,
    **kwargs: Any,
) -> None:
    """Plot the mean over ``runs`` (shape ``(n_seeds, len(x))``, ``n_seeds ≥ 2``) with a band.

    The band is the Student-t interval of the mean at ``level`` (95 % by default), clipped to
    ``bounds``, the range the quantity can take (``(0, 1)`` for a probability, ``(0, None)`` for a
    KL). With at most eight seeds each seed is also drawn, as a thin faint line. ``kwargs`` go to the
    mean's ``ax.plot``.
    """
    runs_np, x_np = (np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=float) for a in (runs, x))
    if runs_np.ndim != 2 or runs_np.shape[1] != x_np.shape[0]:
        raise ValueError(f"runs must have shape (n_seeds, {x_np.shape[0]}); got {runs_np.shape}")
    if runs_np.shape[0] < 2:
        raise ValueError(f"runs needs at least 2 seeds for an interval; got {runs_np.shape[0]}")
    low, high = bounds
    if low is not None and high is not None and not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high; got {bounds!r}")
    mean, lower, upper = (v.numpy() for v in t_interval(torch.from_numpy(runs_np), dim=0, level=level))
    if low is not None or high is not None:
        lower, upper = np.clip(lower, low, high), np.clip(upper, low, high)
    (line,) = ax.plot(x_np, mean, label=label, **kwargs)
    color = line.get_color()
    ax.fill_between(x_np, lower, upper, color=color, alpha=0.2, linewidth=0)
    if runs_np.shape[0] <= MAX_SEEDS_DRAWN:
        for run in runs_np:
            ax.plot(x_np, run, color=color, alpha=0.25, linewidth=0.7, zorder=line.get_zorder() - 1)
