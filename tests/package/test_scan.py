"""Tests of gaebook.scan: exact against the plain loop in every layout, O(log T) dispatched operations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scan_helpers import chunked, time_last_copies

from gaebook.profiling import dispatched_ops
from gaebook.scan import reverse_linear_scan


def loop(b: torch.Tensor, a: torch.Tensor, time_dim: int = -1) -> torch.Tensor:
    """The textbook loop along ``time_dim``."""
    b, a = b.movedim(time_dim, -1), a.expand_as(b).movedim(time_dim, -1)
    x, carry = torch.zeros_like(b), torch.zeros_like(b[..., 0])
    for t in reversed(range(b.shape[-1])):
        carry = b[..., t] + a[..., t] * carry
        x[..., t] = carry
    return x.movedim(-1, time_dim)


# a shape with time somewhere in it: (before..., T, after...), and where time is
layouts = st.tuples(
    st.lists(st.integers(1, 3), max_size=2),
    st.sampled_from([1, 2, 31, 32, 33, 64, 100, 700]) | st.integers(1, 300),
    st.lists(st.integers(1, 3), max_size=2),
)


@given(
    seed=st.integers(0, 2**31 - 1), layout=layouts, p_zero=st.sampled_from([0.0, 0.05, 0.5]), by_chunks=st.booleans()
)
def test_scan_equals_the_loop(seed, layout, p_zero, by_chunks):
    before, steps, after = layout
    shape, time_dim = (*before, steps, *after), len(before)
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    a = torch.rand(shape, generator=g, dtype=torch.float64) * (torch.rand(shape, generator=g) >= p_zero)
    expected = loop(b, a, time_dim)
    with chunked(by_chunks):
        got = reverse_linear_scan(b, a, time_dim=time_dim)
        torch.testing.assert_close(got, expected)
        assert got.shape == b.shape
        # the same dimension counted from the end
        torch.testing.assert_close(reverse_linear_scan(b, a, time_dim=time_dim - len(shape)), expected)


@pytest.mark.parametrize("by_chunks", [False, True])
def test_time_major_equals_time_last_on_transposed_data(by_chunks):
    g = torch.Generator().manual_seed(3)
    for steps in (1, 7, 32, 33, 100, 1000):
        b, a = torch.randn(steps, 5, generator=g), torch.rand(steps, 5, generator=g)
        with chunked(by_chunks):
            major = reverse_linear_scan(b, a, time_dim=0)
            last = reverse_linear_scan(b.T.contiguous(), a.T.contiguous())
        torch.testing.assert_close(major, last.T, rtol=1e-6, atol=1e-6)
        assert major.stride() == b.stride()  # the result has the inputs' layout


def test_scan_on_non_contiguous_inputs_and_leading_dims():
    g = torch.Generator().manual_seed(0)
    b = torch.randn(300, 2, 3, generator=g).permute(1, 2, 0)  # (2, 3, 300), time last but strided
    a = torch.rand(2, 3, 300, generator=g)
    for by_chunks in (False, True):
        with chunked(by_chunks):
            torch.testing.assert_close(reverse_linear_scan(b, a), loop(b, a), rtol=1e-5, atol=1e-5)
            # time first, but the memory is time last: solved all the same
            flipped = reverse_linear_scan(b.permute(2, 1, 0), a.permute(2, 1, 0), time_dim=0)
            torch.testing.assert_close(flipped, loop(b, a).permute(2, 1, 0), rtol=1e-5, atol=1e-5)
    assert reverse_linear_scan(torch.zeros(2, 0), torch.zeros(2, 0)).shape == (2, 0)
    broadcast = torch.rand(300, generator=g)  # one a for every row
    torch.testing.assert_close(reverse_linear_scan(b, broadcast), loop(b, broadcast.expand_as(b)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_chunks", [False, True])
@pytest.mark.parametrize("time_dim", [-1, 0])
def test_inputs_are_kept_unless_overwrite_is_asked_for(by_chunks, time_dim):
    g = torch.Generator().manual_seed(1)
    b0, a0 = torch.randn(3, 100, generator=g), torch.rand(3, 100, generator=g)
    if time_dim == 0:
        b0, a0 = b0.T.contiguous(), a0.T.contiguous()
    with chunked(by_chunks):
        b, a = b0.clone(), a0.clone()
        torch.testing.assert_close(reverse_linear_scan(b, a, time_dim=time_dim), loop(b0, a0, time_dim))
        assert torch.equal(b, b0) and torch.equal(a, a0)
        for steps in (20, 96, 100):  # one chunk; whole chunks, solved in the inputs' memory; padding
            cut = [slice(None)] * 2
            cut[time_dim] = slice(steps)
            b, a = b0[tuple(cut)].clone(), a0[tuple(cut)].clone()
            x = reverse_linear_scan(b, a, time_dim=time_dim, overwrite=True)
            a.fill_(float("nan"))  # the caller may reuse a's memory: the result must not live there
            torch.testing.assert_close(x, loop(b0[tuple(cut)], a0[tuple(cut)], time_dim))


def ops_for(steps: int, time_dim: int) -> int:
    shape = (4, steps) if time_dim == -1 else (steps, 4)
    b, a = torch.randn(shape), torch.rand(shape)
    return sum(dispatched_ops(lambda: reverse_linear_scan(b, a, time_dim=time_dim)).values())


def test_dispatched_operations_grow_logarithmically():
    """At most 4 operations per doubling of T, in both layouts and both regimes (one chunk, chunks)."""
    for k in range(1, 18):
        steps = 2**k
        last, major = ops_for(steps, -1), ops_for(steps, 0)
        assert last == major, (steps, last, major)
        assert last <= 4 * k + 4, (steps, last)
    assert ops_for(2**17, 0) < 2**17 / 1000


@pytest.mark.parametrize("by_chunks", [False, True])
def test_time_major_input_is_not_copied_to_time_last(by_chunks):
    steps, batch = 100, 7
    b, a = torch.randn(steps, batch), torch.rand(steps, batch)
    with chunked(by_chunks):
        assert time_last_copies(lambda: reverse_linear_scan(b, a, time_dim=0), steps, batch) == []
        # the check does see a transposed copy when there is one
        naive = lambda: reverse_linear_scan(b.T.contiguous(), a.T.contiguous()).T  # noqa: E731
        assert time_last_copies(naive, steps, batch)


@pytest.mark.parametrize(
    ("time_dim", "error", "match"),
    [
        (2, ValueError, r"time_dim=2 is out of range for inputs of 2 dimensions"),
        (-3, ValueError, r"time_dim=-3 is out of range"),
        (1.0, TypeError, "time_dim must be an int; got float"),
        ("0", TypeError, "time_dim must be an int; got str"),
        (None, TypeError, "time_dim must be an int; got NoneType"),
        (True, TypeError, "time_dim must be an int; got bool"),
    ],
)
def test_bad_time_dim_is_a_clear_error(time_dim, error, match):
    with pytest.raises(error, match=match):
        reverse_linear_scan(torch.zeros(2, 5), torch.zeros(2, 5), time_dim=time_dim)


def test_a_zero_dimensional_input_has_no_time_dimension():
    with pytest.raises(ValueError, match="time dimension"):
        reverse_linear_scan(torch.tensor(1.0), torch.tensor(0.5))


def test_numpy_integers_are_accepted_as_time_dim():
    np = pytest.importorskip("numpy")
    b, a = torch.randn(40, 3), torch.rand(40, 3)
    for time_dim in (np.int64(0), np.int32(-2)):
        torch.testing.assert_close(reverse_linear_scan(b, a, time_dim=time_dim), loop(b, a, 0))
