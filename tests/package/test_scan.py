"""Tests of gaebook.scan: exact against the plain loop, and O(log T) dispatched operations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gaebook.profiling import dispatched_ops
from gaebook.scan import reverse_linear_scan


def loop(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    x, carry = torch.zeros_like(b), torch.zeros_like(b[..., 0])
    for t in reversed(range(b.shape[-1])):
        carry = b[..., t] + a[..., t] * carry
        x[..., t] = carry
    return x


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    steps=st.integers(1, 700),
    p_zero=st.sampled_from([0.0, 0.05, 0.5]),
)
def test_scan_equals_the_loop(seed, batch, steps, p_zero):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(batch, steps, generator=g, dtype=torch.float64)
    a = torch.rand(batch, steps, generator=g, dtype=torch.float64) * (torch.rand(batch, steps, generator=g) >= p_zero)
    torch.testing.assert_close(reverse_linear_scan(b, a), loop(b, a))


def test_scan_on_non_contiguous_inputs_and_leading_dims():
    g = torch.Generator().manual_seed(0)
    b = torch.randn(300, 2, 3, generator=g).permute(1, 2, 0)  # (2, 3, 300), time last but strided
    a = torch.rand(2, 3, 300, generator=g)
    torch.testing.assert_close(reverse_linear_scan(b, a), loop(b, a), rtol=1e-5, atol=1e-5)
    assert reverse_linear_scan(torch.zeros(2, 0), torch.zeros(2, 0)).shape == (2, 0)


def test_inputs_are_kept_unless_overwrite_is_asked_for():
    g = torch.Generator().manual_seed(1)
    b, a = torch.randn(3, 100, generator=g), torch.rand(3, 100, generator=g)
    b0, a0 = b.clone(), a.clone()
    expected = loop(b, a)
    torch.testing.assert_close(reverse_linear_scan(b, a), expected)
    assert torch.equal(b, b0) and torch.equal(a, a0)
    for steps in (20, 96, 100):  # one chunk; whole chunks, solved in the inputs' memory; padding
        b, a = b0[:, :steps].clone(), a0[:, :steps].clone()
        x = reverse_linear_scan(b, a, overwrite=True)
        a.fill_(float("nan"))  # the caller may reuse a's memory: the result must not live there
        torch.testing.assert_close(x, loop(b0[:, :steps], a0[:, :steps]))


def ops_for(steps: int) -> int:
    b, a = torch.randn(4, steps), torch.rand(4, steps)
    return sum(dispatched_ops(lambda: reverse_linear_scan(b, a)).values())


@pytest.mark.parametrize("steps", [4096, 65536])
def test_dispatched_operations_grow_logarithmically(steps):
    """16× more steps may add a level of chunks (a constant), never 16× the operations."""
    small, large = ops_for(steps // 16), ops_for(steps)
    assert large < 2 * small, (small, large)
    assert large < steps / 10
