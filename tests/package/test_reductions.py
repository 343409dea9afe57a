"""Tests of gaebook.reductions: masked and per-agent means, whitening, explained variance."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from gaebook.reductions import (
    explained_variance,
    explained_variance_per_agent,
    masked_mean,
    masked_whiten,
    mean_per_agent,
)

f64 = torch.float64


def prefix_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width) < torch.tensor(lengths).unsqueeze(1)


def direct_explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """The textbook formula on a flat sample, with the unbiased variances of torch.var."""
    return 1 - ((targets - predictions).var() / targets.var()).item()


@st.composite
def agents_batch(draw):
    """Predictions, targets and a mask of shape (G, N, T) with at least two distinct valid targets per agent."""
    g, n, t = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    targets = torch.randn(g, n, t, generator=gen, dtype=f64) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    # no subnormals: under flush-to-zero (a library built with -ffast-math) Hypothesis cannot draw them
    noise = draw(st.floats(0.0, 2.0, allow_subnormal=False))
    predictions = targets + noise * torch.randn(g, n, t, generator=gen, dtype=f64)
    mask = torch.rand(g, n, t, generator=gen) < draw(st.floats(0.3, 1.0))
    assume(all(int(mask[i].sum()) >= 2 for i in range(g)))
    return predictions, targets, mask


@given(agents_batch())
def test_explained_variance_forms_agree_with_the_direct_formula(batch):
    predictions, targets, mask = batch
    per_agent = explained_variance_per_agent(predictions, targets, mask)
    assert per_agent.shape == (targets.shape[0],)
    for g in range(targets.shape[0]):
        expected = direct_explained_variance(predictions[g][mask[g]], targets[g][mask[g]])
        assert per_agent[g].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
        # one agent's slice through the masked (pooled) form gives the same number
        assert explained_variance(predictions[g], targets[g], mask[g]).item() == pytest.approx(
            expected, rel=1e-9, abs=1e-9
        )
    pooled = explained_variance(predictions, targets, mask)
    assert pooled.shape == ()
    assert pooled.item() == pytest.approx(
        direct_explained_variance(predictions[mask], targets[mask]), rel=1e-9, abs=1e-9
    )
    # without a mask every position counts
    full = explained_variance_per_agent(predictions, targets)
    for g in range(targets.shape[0]):
        expected = direct_explained_variance(predictions[g].flatten(), targets[g].flatten())
        assert full[g].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_explained_variance_reference_points():
    targets = torch.tensor([[1.0, 2.0, 4.0, 7.0]])
    assert explained_variance_per_agent(targets, targets).item() == 1.0  # exact predictions
    mean = torch.full_like(targets, targets.mean().item())
    assert explained_variance_per_agent(mean, targets).item() == pytest.approx(0.0, abs=1e-7)
    assert explained_variance(-targets, targets).item() < 0  # worse than the mean


def test_explained_variance_is_nan_when_the_targets_do_not_vary():
    # equal targets whose computed variance is not exactly 0: no clamp may turn it into a number
    constant = torch.full((2, 1000), 0.1)
    predictions = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.isnan(explained_variance_per_agent(predictions, constant)).all()
    assert torch.isnan(explained_variance(predictions, constant))
    # only the valid positions count: varying padding does not make the targets vary...
    targets = torch.tensor([[3.0, 3.0, 3.0, 9.0], [1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    ev = explained_variance_per_agent(torch.zeros_like(targets), targets, mask)
    assert math.isnan(ev[0].item()) and math.isfinite(ev[1].item())  # ...and one agent's NaN is its own
    assert torch.isnan(
        explained_variance(torch.zeros(3), torch.tensor([3.0, 3.0, 9.0]), torch.tensor([1, 1, 0]).bool())
    )
    # no valid position at all
    assert torch.isnan(explained_variance(torch.zeros(3), torch.arange(3.0), torch.zeros(3, dtype=torch.bool)))


def test_explained_variance_stays_on_the_device_and_dtype():
    targets = torch.arange(6.0, dtype=f64).view(2, 3)
    assert explained_variance_per_agent(targets.flip(1), targets).dtype == f64


@given(st.data())
def test_means_agree_with_a_direct_computation(data):
    g, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    x = torch.randn(g, n, 3, generator=gen, dtype=f64)
    mask = torch.rand(g, n, 3, generator=gen) < 0.6
    per_agent = mean_per_agent(x, mask)
    for i in range(g):
        expected = x[i][mask[i]].mean().item() if mask[i].any() else 0.0
        assert per_agent[i].item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(mean_per_agent(x), x.flatten(1).mean(1))
    expected = x[mask].mean().item() if mask.any() else 0.0
    assert masked_mean(x, mask).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@given(st.data())
def test_whitening_ignores_masked_positions(data):
    lengths = data.draw(st.lists(st.integers(0, 6), min_size=2, max_size=5))
    mask = prefix_mask(lengths, 6)
    assume(int(mask.sum()) >= 2)  # a standard deviation needs two valid positions
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    x = torch.randn(mask.shape, generator=g, dtype=f64)
    garbage = x.masked_fill(~mask, 1e6)
    white = masked_whiten(garbage, mask)
    torch.testing.assert_close(white, masked_whiten(x, mask))
    assert (white[~mask] == 0).all()
    valid = white[mask]
    torch.testing.assert_close(valid.mean(), torch.tensor(0.0, dtype=f64), atol=1e-12, rtol=0)
    torch.testing.assert_close(valid.std(), torch.tensor(1.0, dtype=f64), atol=1e-6, rtol=0)
    shifted = masked_whiten(x, mask, shift_mean=False)
    torch.testing.assert_close(shifted[mask], valid + x[mask].mean())
    torch.testing.assert_close(masked_mean(garbage, mask), x[mask].mean())


def test_bad_input():
    x = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask has shape"):
        masked_whiten(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        masked_mean(x, mask.float())
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        mean_per_agent(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must have shape \(G, \.\.\.\)"):
        mean_per_agent(torch.zeros(3))
    with pytest.raises(ValueError, match="predictions has shape"):
        explained_variance(torch.zeros(3), x)
    with pytest.raises(TypeError, match=r"targets must be a torch\.Tensor"):
        explained_variance_per_agent(x, [[0.0] * 3] * 2)
    with pytest.raises(ValueError, match="mask has shape"):
        explained_variance_per_agent(x, x, torch.ones(2, 2, dtype=torch.bool))
