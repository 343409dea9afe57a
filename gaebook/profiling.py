"""What a call dispatches, seen from the device: the operations it launches, the memory layouts it
produces, and its transfers with the host.

:func:`dispatched_ops` counts the operations that do work (a device-independent proxy for GPU kernel
launches); :func:`produced_layouts` lists the shape and strides of every tensor they produce, which
shows whether a call copies its inputs into another memory layout; :class:`HostTransfers` records
the operations that move data between the host and a device (each a synchronisation or a copy on
a GPU). All watch the ATen operations a call dispatches, so they work the same on the CPU, on a GPU
and on PyTorch's fake tensors.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostTransfers", "Transfer", "dispatched_ops", "produced_layouts", "transfer_kind"]

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


TransferKind = Literal["read", "upload"]

# The host waits for a value, or for an output whose shape depends on values. Outside inference
# mode, .item() and bool(t) reach the dispatcher as aten::_local_scalar_dense; inside it, as
# aten::item and aten::is_nonzero.
_READS = frozenset(
    {
        "aten::_local_scalar_dense",
        "aten::item",
        "aten::is_nonzero",
        "aten::equal",
        "aten::allclose",
        "aten::nonzero",
        "aten::masked_select",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::unique_dim_consecutive",
        "aten::bincount",
    }
)
# A tensor made from Python or NumPy data: torch.tensor, torch.as_tensor, torch.from_numpy (the
# _copy variant under functionalisation).
_FROM_PYTHON = frozenset({"aten::lift_fresh", "aten::lift_fresh_copy"})
_INDEXING = frozenset({"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"})


def _crossing(source: torch.device, target: torch.device | None) -> TransferKind | None:
    """``"read"`` for a copy from a device to the CPU, ``"upload"`` for one from the CPU to a device."""
    if target is None or (source.type == "cpu") == (target.type == "cpu"):
        return None
    return "read" if target.type == "cpu" else "upload"


def transfer_kind(func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TransferKind | None:
    """Whether a dispatched ATen call moves data between the host and a device, and which way.

    ``"read"``: the host waits for the device: a value read into Python (``.item()``, ``bool(t)``,
    ``float(t)``, a format such as ``f"{t:.2f}"``, indexing with a 0-d integer tensor),
    ``torch.equal`` and ``torch.allclose``, an output whose shape depends on values
    (``nonzero``, ``masked_select``, indexing with a bool mask, ``unique``, ``bincount``,
    ``repeat_interleave`` without ``output_size``), and a copy from a device to the CPU.
    ``"upload"``: a tensor made from Python or NumPy data (``aten::lift_fresh``) and a copy from
    the CPU to a device. ``None`` otherwise. A read is a read on any device: on the CPU it costs
    nothing, on a GPU it is a synchronisation. A 0-d tensor made on the CPU is no upload: it is a
    scalar, which a GPU kernel takes by value (``t[i] = 0`` makes one on the CPU, none on a GPU).
    """
    name = f"{func.namespace}::{func.overloadpacket.__name__}"
    if name in _READS:
        return "read"
    if name in _FROM_PYTHON:
        return "upload" if args[0].device.type != "cpu" or args[0].ndim > 0 else None
    if name == "aten::repeat_interleave":
        return "read" if func._overloadname in ("Tensor", "self_Tensor") and kwargs.get("output_size") is None else None
    if name in _INDEXING:
        masks = [i for i in args[1] if isinstance(i, Tensor) and i.dtype in (torch.bool, torch.uint8)]
        return "read" if masks else None
    if name == "aten::_to_copy":
        return _crossing(args[0].device, kwargs.get("device"))
    if name == "aten::copy_":
        return _crossing(args[1].device, args[0].device)
    return None


class Transfer(NamedTuple):
    """One operation seen by :class:`HostTransfers`: its kind, ATen name and the code that called it."""

    kind: TransferKind
    op: str
    where: str


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def _caller() -> str:
    """``"dir/file.py:line in function"`` of the innermost frame outside torch and this module."""
    frame = sys._getframe(1)
    while frame.f_back is not None and (
        frame.f_code.co_filename.startswith(_TORCH_DIR) or frame.f_globals is globals()
    ):
        frame = frame.f_back
    path = frame.f_code.co_filename.split(os.sep)
    return f"{os.sep.join(path[-2:])}:{frame.f_lineno} in {frame.f_code.co_name}"


class HostTransfers(TorchDispatchMode):
    """A context manager that records the host reads and uploads of the code it runs (:func:`transfer_kind`).

    ::

        with HostTransfers() as transfers:
            env.step(actions, check_actions=False)
        assert not transfers.reads, transfers.reads

    ``events`` lists every :class:`Transfer` in order; ``reads`` and ``uploads`` filter it. Each
    names the code that made the call, such as ``"gaebook/cartpole.py:123 in _check_actions"``.
    ``torch.tensor(data, device="cuda")`` is one event on a GPU (``aten::lift_fresh`` of the
    device tensor) and two under ``FakeTensorMode``, which makes the tensor on the host and then
    copies it (``aten::_to_copy``).

    It sees the calls that reach the dispatcher from Python, composite operations as the calls
    they decompose into, so some reads go unseen: on the CPU, ``.tolist()`` and ``.numpy()`` read
    memory directly and dispatch nothing, and a kernel's own reads (the CPU's
    ``torch.multinomial`` checks its input) happen below the dispatcher. On a GPU, ``.tolist()``
    copies to the CPU first, which is seen; ``torch.profiler`` and ``torch.cuda.set_sync_debug_mode``
    see inside kernels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Transfer] = []

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Collection[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        kind = transfer_kind(func, args, kwargs)
        if kind is not None:
            self.events.append(Transfer(kind, f"{func.namespace}::{func.overloadpacket.__name__}", _caller()))
        return func(*args, **kwargs)

    @property
    def reads(self) -> list[Transfer]:
        """The events where the host waits for the device."""
        return [e for e in self.events if e.kind == "read"]

    @property
    def uploads(self) -> list[Transfer]:
        """The events where the host sends data."""
        return [e for e in self.events if e.kind == "upload"]


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
