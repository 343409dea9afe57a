"""What a call exchanges with the host: the synchronisations and uploads it would cost on a GPU.

The tests run on the CPU, so they look at the operations that would move data between host and
device: every read of a tensor's value into Python (``.item()``, ``bool(tensor)``, ``int(tensor)``)
ends in ``aten::_local_scalar_dense``, and every tensor made from Python data
(``torch.tensor(list)``) starts with ``aten::lift_fresh``. The profiler records them even inside
other operations (``torch.multinomial`` reads its input twice to check it), where a
``TorchDispatchMode`` would not see them. ``Tensor.tolist()`` of a CPU tensor dispatches nothing
and is not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

_NAMES = {"aten::_local_scalar_dense": "reads", "aten::lift_fresh": "uploads", "aten::lift_fresh_copy": "uploads"}


def host_traffic(fn: Callable[[], object]) -> Counter[str]:
    """Run ``fn()``; count its ``reads`` (values read into Python) and ``uploads`` (tensors made from Python data)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(_NAMES[e.name] for e in prof.events() if e.name in _NAMES)
