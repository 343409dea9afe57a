"""What the tests of the chunked scan and of the estimators built on it share: forcing the chunked
path on small problems, and finding the time-last copies an operation makes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from gaebook import scan
from gaebook.profiling import produced_layouts


@contextmanager
def chunked(on: bool) -> Iterator[None]:
    """Solve even small problems by chunks (``on``), or by the scan's default rule."""
    with pytest.MonkeyPatch.context() as patch:
        if on:
            patch.setattr(scan, "SMALL", 0)
        yield


def time_last_copies(fn: Callable[[], object], steps: int, batch: int) -> list:
    """The tensors ``fn`` produces of shape ``(batch, steps)``, or ``(steps, batch)`` with time contiguous."""
    return [
        (name, shape, stride)
        for name, shape, stride in produced_layouts(fn)
        if shape == (batch, steps) or (shape == (steps, batch) and stride[0] < stride[1])
    ]
