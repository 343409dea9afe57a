"""Counting the operations a call dispatches: a device-independent proxy for GPU kernel launches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

__all__ = ["dispatched_ops"]

# Operations that only make a new view or allocate: they launch no kernel on a GPU.
_NO_KERNEL = {
    "aten::alias", "aten::as_strided", "aten::detach", "aten::empty", "aten::empty_like",
    "aten::empty_strided", "aten::expand", "aten::expand_as", "aten::lift_fresh", "aten::narrow",
    "aten::permute", "aten::reshape", "aten::resize_", "aten::select", "aten::slice", "aten::squeeze",
    "aten::t", "aten::transpose", "aten::unbind", "aten::unsqueeze", "aten::view", "aten::_unsafe_view",
}


def dispatched_ops(fn: Callable[[], object]) -> Counter[str]:
    """Run ``fn()`` under the profiler and count its top-level operations that do work.

    Nested calls (an op that an op calls) and view or allocation ops are not counted, so on a GPU
    each counted op is roughly one kernel launch. Returns a ``Counter`` of op names.
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(
        e.name for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::") and e.name not in _NO_KERNEL
    )
