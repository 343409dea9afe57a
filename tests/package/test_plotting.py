import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from gaebook.plotting import mean_band, use_book_style


def test_mean_band_draws_the_mean_and_a_band():
    use_book_style()
    fig, ax = plt.subplots()
    runs = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    mean_band(ax, np.arange(3), runs, label="runs")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 2.0, 3.0])
    assert len(ax.collections) == 1
    with pytest.raises(ValueError, match="runs must have shape"):
        mean_band(ax, np.arange(4), runs, label="bad")
    plt.close(fig)
