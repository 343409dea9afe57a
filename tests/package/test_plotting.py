import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from gaebook.plotting import COLUMN_WIDTH, figsize, lam_color, mean_band, series_style, use_book_style
from gaebook.statistics import t_quantile


def test_mean_band_draws_the_mean_a_t_interval_and_each_seed():
    use_book_style()
    fig, ax = plt.subplots()
    runs = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0], [1.0, 2.0, 1.0]])
    mean_band(ax, np.arange(3), runs, label="runs")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 2.0, 3.0])
    assert len(ax.lines) == 4  # the mean and the three seeds
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    half = t_quantile(3) * runs.std(0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(sorted(band.tolist())[:1], [min(runs.mean(0) - half)])
    np.testing.assert_allclose(band.max(), max(runs.mean(0) + half))
    plt.close(fig)


def test_mean_band_clips_the_band_to_the_feasible_range_and_hides_seeds_beyond_eight():
    fig, ax = plt.subplots()
    runs = np.random.default_rng(0).uniform(0.0, 1.0, size=(9, 4))
    runs[:, 0] = [0.0] * 8 + [0.9]  # an interval that would cross 0
    mean_band(ax, np.arange(4), runs, label="p", bounds=(0.0, 1.0))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() >= 0.0 and band.max() <= 1.0
    assert len(ax.lines) == 1
    plt.close(fig)


def test_mean_band_rejects_bad_input():
    fig, ax = plt.subplots()
    runs = np.ones((2, 3))
    with pytest.raises(ValueError, match="runs must have shape"):
        mean_band(ax, np.arange(4), runs, label="bad")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        mean_band(ax, np.arange(3), runs[:1], label="one")
    with pytest.raises(ValueError, match="bounds"):
        mean_band(ax, np.arange(3), runs, label="b", bounds=(1.0, 0.0))
    plt.close(fig)


def test_lam_color_orders_lambda_along_the_horizon_and_is_the_same_everywhere():
    positions = [lam_color(lam) for lam in (0.0, 0.5, 0.9, 0.95, 0.99)]
    assert len(set(positions)) == 5
    assert lam_color(1.0) == lam_color(0.99) and lam_color(0.9) == lam_color(0.9)
    # viridis darkest at 0 to lightest: luminance grows with λ
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b, _ in positions]
    assert lum == sorted(lum)
    for bad in (-0.1, 1.5, "0.9", True):
        with pytest.raises(ValueError, match="lam"):
            lam_color(bad)


def test_series_styles_differ_in_colour_marker_and_line_style():
    styles = [series_style(i) for i in range(7)]
    for key in ("color", "marker", "linestyle"):
        values = [str(s[key]) for s in styles]
        assert len(set(values)) == 7, key
    assert all(to_rgba(s["color"]) != to_rgba("red") for s in styles)
    with pytest.raises(ValueError, match="i must be below"):
        series_style(7)
    with pytest.raises(ValueError, match="non-negative"):
        series_style(-1)


def test_book_style_draws_at_the_column_width_with_legible_text():
    use_book_style()
    assert tuple(matplotlib.rcParams["figure.figsize"]) == figsize(1)
    assert figsize(2)[0] == COLUMN_WIDTH
    for key in ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.labelsize"):
        assert float(matplotlib.rcParams[key]) >= 10, key
    with pytest.raises(ValueError, match="ncols"):
        figsize(3)
