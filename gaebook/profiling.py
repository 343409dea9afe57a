"""Counting the operations a call dispatches: a device-independent proxy for GPU kernel launches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["dispatched_ops"]

# Operations that only allocate: like views, they launch no kernel on a GPU.
_ALLOCATIONS = {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::lift_fresh", "aten::resize_"}


class _Counting(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f"aten::{func.overloadpacket.__name__}"
        if not func.is_view and name not in _ALLOCATIONS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def dispatched_ops(fn: Callable[[], object]) -> Counter[str]:
    """Run ``fn()`` and count the ATen operations it dispatches that do work.

    Operations are counted where they reach the dispatcher's backend (composite operations as the
    kernels they call, an operation's own internal calls not at all), leaving out views and plain
    allocations, so on a GPU each counted op is roughly one kernel launch. Counting keeps no trace
    of the calls, so it works for loops of millions of operations. Returns a ``Counter`` of names.
    """
    with _Counting() as mode:
        fn()
    return mode.counts
