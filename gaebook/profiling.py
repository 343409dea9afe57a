"""Watching the operations a call dispatches: a device-independent view of what it does.

:func:`dispatched_ops` counts them (a proxy for GPU kernel launches); :func:`produced_layouts`
lists the shape and strides of every tensor they produce, which shows whether a call copies its
inputs into another memory layout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["dispatched_ops", "produced_layouts"]

# Operations that only allocate: like views, they launch no kernel on a GPU.
_ALLOCATIONS = {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::lift_fresh", "aten::resize_"}

Layout = tuple[str, tuple[int, ...], tuple[int, ...]]


class _Watching(TorchDispatchMode):
    """Counts the operations that do work and, if asked, the layouts of the tensors they produce."""

    def __init__(self, layouts: bool) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.layouts: list[Layout] | None = [] if layouts else None

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        name = f"aten::{func.overloadpacket.__name__}"
        if not func.is_view and name not in _ALLOCATIONS:
            self.counts[name] += 1
            if self.layouts is not None:
                for x in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(x, torch.Tensor):
                        self.layouts.append((name, tuple(x.shape), tuple(x.stride())))
        return out


def dispatched_ops(fn: Callable[[], object]) -> Counter[str]:
    """Run ``fn()`` and count the ATen operations it dispatches that do work.

    Operations are counted where they reach the dispatcher's backend (composite operations as the
    kernels they call, an operation's own internal calls not at all), leaving out views and plain
    allocations, so on a GPU each counted op is roughly one kernel launch. Counting keeps no trace
    of the calls, so it works for loops of millions of operations. Returns a ``Counter`` of names.
    """
    with _Watching(layouts=False) as mode:
        fn()
    return mode.counts


def produced_layouts(fn: Callable[[], object]) -> list[Layout]:
    """Run ``fn()`` and list ``(op name, shape, strides)`` for each tensor its operations produce.

    The same operations as :func:`dispatched_ops` (views and plain allocations left out), in the
    order they run; an in-place or ``out=`` operation produces the tensor it writes. A copy of an
    input into another layout shows up as a tensor of the input's shape (or of the transposed
    shape) with other strides.
    """
    with _Watching(layouts=True) as mode:
        fn()
    assert mode.layouts is not None
    return mode.layouts
