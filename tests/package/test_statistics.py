import math

import numpy as np
import pytest
import torch

from gaebook.statistics import carry_forward, mean_se, t_interval, t_quantile


def test_t_quantile_matches_the_table_values():
    # Student's t table (two-sided 95 %): 12.706 (df 1), 4.303 (df 2), 2.365 (df 7), 2.045 (df 29)
    for n, table in ((2, 12.706), (3, 4.303), (8, 2.365), (30, 2.045)):
        assert t_quantile(n) == pytest.approx(table, abs=1e-3)
    assert t_quantile(3, level=0.9) == pytest.approx(2.920, abs=1e-3)
    for bad in (1, 2.0, True):
        with pytest.raises(ValueError, match="n must"):
            t_quantile(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        t_quantile(3, level=1.0)


def test_mean_se_and_t_interval_over_a_chosen_dimension():
    x = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    mean, se = mean_se(x)
    np.testing.assert_allclose(mean, [3.0, 1.0])
    np.testing.assert_allclose(se, [np.std([1, 2, 6], ddof=1) / math.sqrt(3), np.std([0, 0, 3], ddof=1) / math.sqrt(3)])
    m0, lo, hi = t_interval(x, dim=0)
    half = t_quantile(2) * np.std([1.0, 0.0], ddof=1) / math.sqrt(2)
    assert m0[0] == pytest.approx(0.5) and lo[0] == pytest.approx(0.5 - half) and hi[0] == pytest.approx(0.5 + half)


def test_a_95_percent_t_interval_covers_the_mean_95_percent_of_the_time():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g) * 2.0 + 1.0  # 20 000 experiments of 3 seeds each
    _, lo, hi = t_interval(x, dim=-1)
    coverage = ((lo <= 1.0) & (hi >= 1.0)).double().mean().item()
    assert coverage == pytest.approx(0.95, abs=0.01)  # a normal 1.96 interval covers only about 0.80


def test_statistics_reject_bad_input():
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        mean_se([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating"):
        mean_se(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        t_interval(torch.ones(4, 1))


def test_carry_forward_fills_gaps_with_the_last_value_and_keeps_leading_gaps():
    nan = float("nan")
    curves = torch.tensor([[nan, 1.0, nan, nan, 4.0, nan], [2.0, nan, 3.0, nan, nan, nan]])
    out = carry_forward(curves)
    expected = torch.tensor([[nan, 1.0, 1.0, 1.0, 4.0, 4.0], [2.0, 2.0, 3.0, 3.0, 3.0, 3.0]])
    torch.testing.assert_close(out, expected, equal_nan=True)
    assert curves[0, 2].isnan()  # the input is left alone
    with pytest.raises(TypeError, match="floating"):
        carry_forward(torch.tensor([1, 2]))
