"""Running gaebook on CUDA without a GPU: fake CUDA tensors, watched for device mismatches and host syncs.

:meth:`Harness.run` runs a callable on the device under test and fails it with a
:class:`ConformanceError` at the first

* :class:`DeviceMismatch`: an operation mixes tensors of two devices, or draws random numbers on
  another device than its generator's (CUDA kernels refuse both);
* :class:`HostSync`: a read of a device tensor on the host (``.item()``, ``bool(t)``, ``int(t)``,
  ``.tolist()``, ``.cpu()``, an output whose shape depends on values) or a copy of host data to the
  device (``torch.tensor(data, device=...)``, ``.to(device)`` of a CPU tensor), unless
  :data:`ALLOWED` lists the gaebook function that made it, with the reason.

The device under test is a fake ``cuda:0``, or a real GPU when the environment variable
``GAEBOOK_TEST_DEVICE`` is ``cuda`` (``tools/gpu_check.py`` sets it). Make the inputs with
:meth:`Harness.tensor`, :meth:`Harness.module` and :meth:`Harness.generator`, and check the
outputs with :meth:`Harness.assert_on_device`.

How ``torch._subclasses.fake_tensor.FakeTensorMode`` behaves on a CPU-only build (torch 2.13), and
what the harness does about it:

* Inside the mode, ``torch.ones(3, device="cuda:0")`` is a fake tensor: a shape, a dtype and a
  device, no data; operations compute only those. Mixing devices raises
  ``FakeTensorDeviceMismatchError`` where CUDA raises, and 0-d CPU tensors mix as on CUDA.
* No read returns a value: ``.item()``, ``bool(t)``, ``.tolist()`` and ``torch.equal`` raise
  ``DataDependentOutputException`` (for fake CPU tensors too), and ``masked_select`` or
  ``unique``, whose output shapes depend on values, raise ``DynamicOutputShapeException``. Copies
  raise nothing: ``.cpu()`` of a fake CUDA tensor is a fake CPU tensor, and
  ``torch.tensor(data, device="cuda:0")`` makes a host tensor and copies it. So the harness
  watches every ATen call from above the mode (a ``TorchDispatchMode`` using
  :func:`gaebook.profiling.transfer_kind`). It answers an allowed read so that the code goes on:
  ``True`` for a bool (the allowed reads ask "is all well?" or "go on?"), 0 for a number, zeros
  for a copy to the CPU; a shape that depends on values has no answer.
* Operations on host tensors would be fake too, and Python-side code (tokenisers, task
  generators, the step counter of ``torch.optim.Adam``) could not read its own host tensors. The
  harness runs every operation without a fake input or a device output for real, outside the
  mode: only device tensors are fake, and reading a host tensor is no sync.
* Random operations ignore the generator's device: ``torch.rand(3, generator=cpu_generator,
  device="cuda:0")`` returns a fake CUDA tensor, where CUDA raises. ``torch.Generator("cuda")``
  cannot be made on a CPU-only build, but a Python subclass of ``torch.Generator`` (a CPU
  generator underneath) can say ``device == cuda:0``, and code that takes its device from
  ``generator.device`` then draws there. The generator that reaches an ATen call is a new object of
  the base class: the harness knows its own by their seeds (:data:`FAKE_SEEDS`) and checks the
  device of every draw against its generator's. Some fake kernels refuse a generator
  (``exponential_``: "generator is not supported in refs"), so after that check fake calls get none.
* Some Python bindings take a CUDA device guard, which a CPU-only build lacks: indexing (``t[i]``
  and ``t[i] = v``), ``copy_``, ``contiguous``, ``~t``, ``int(t)``, ``float(t)``,
  ``operator.index(t)`` (and ``nonzero``, ``new_tensor``, ``.cuda()`` and ``.to("cuda")``, which
  gaebook does not use; ``.to("cuda:0")`` works). They raise "PyTorch is not linked with support
  for cuda devices" before dispatching anything (:class:`FakeCudaGap`);
  ``torch._C._ensureCUDADeviceGuardSet`` installs a no-op guard only in CUDA builds. The ATen
  operations beneath them work, so a ``TorchFunctionMode`` sends those bindings, for fake
  tensors, to the operations they call: indexing as PyTorch's ``applySlicing`` does it (``select``,
  ``slice``, ``unsqueeze``, then one ``index`` or ``index_put_``), ``~t`` to ``bitwise_not``. No
  change to gaebook is needed for them.
* Autograd cannot record an operation on a fake CUDA tensor that requires grad: making the graph
  asks for the device guard in C++ code that cannot raise, and the process aborts. The harness
  runs fake calls with grad mode off, and ``backward()`` gives a zero gradient to every fake
  tensor that requires grad and was used since the previous ``backward()``: what an optimiser
  step needs. Backward passes themselves are not checked on fake CUDA (on a GPU they are).
* Modules: a module built on the CPU moves to ``cuda:0`` with ``module.to("cuda:0")`` inside the
  mode, which replaces its parameters by fake ones (:meth:`Harness.module`).
  ``FakeTensorMode.from_tensor(t)`` would fake ``t`` on its own device, the CPU. A module built
  inside the mode has fake CPU parameters, which ``.to()`` fails to swap; the harness makes none,
  since CPU operations run for real.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import FrameType
from typing import Any, TypeVar

import pytest
import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from gaebook.profiling import transfer_kind

DEVICE_VARIABLE = "GAEBOOK_TEST_DEVICE"
# The seeds of the harness's fake CUDA generators: far from any seed a test or a chapter uses.
FAKE_SEEDS = range(2**62, 2**62 + 2**20)
aten = torch.ops.aten
M = TypeVar("M", bound=nn.Module)

# Fake CUDA needs a CPU-only build of torch: a CUDA build initialises its driver for a fake
# ``cuda:0`` tensor and, with no GPU, raises "Found no NVIDIA driver" (PyPI's Linux wheels, as
# `make floors` installs). There the suite can only run on a real GPU, with GAEBOOK_TEST_DEVICE=cuda.
NO_FAKE_CUDA = pytest.mark.skipif(
    torch.backends.cuda.is_built() and not torch.cuda.is_available() and os.environ.get(DEVICE_VARIABLE) != "cuda",
    reason="fake CUDA needs a CPU-only build of torch; this one is a CUDA build without a GPU",
)


class ConformanceError(AssertionError):
    """Code under the harness broke a rule of running on a GPU."""


class DeviceMismatch(ConformanceError):
    """An operation mixed devices, or drew from a generator on another device."""


class HostSync(ConformanceError):
    """A read of a device tensor on the host, or a copy of host data to the device, not in :data:`ALLOWED`."""


class FakeCudaGap(RuntimeError):
    """A binding of PyTorch that fake CUDA cannot run on a CPU-only build (see the module docstring)."""


@dataclasses.dataclass(frozen=True)
class Allowed:
    """Host transfers that ``module.function`` may make, by ATen name, and why."""

    module: str
    function: str
    ops: frozenset[str]
    reason: str


_SCALAR = frozenset({"aten::_local_scalar_dense"})
_COPY = frozenset({"aten::_to_copy"})

ALLOWED = (
    Allowed(
        "gaebook.advantages",
        "_check_inputs",
        _SCALAR,
        "check_finite=True reads whether the inputs are finite: a check the caller asks for, documented as a sync",
    ),
    Allowed(
        "gaebook.advantages",
        "_check_coefficient",
        _SCALAR,
        "check_finite=True reads whether a tensor gamma or lam lies in [0, 1], as above",
    ),
    Allowed(
        "gaebook.advantages",
        "gae_reference",
        _SCALAR | _COPY,
        "the float64 oracle loops in Python over values read from the device and uploads its result, on purpose",
    ),
    Allowed(
        "gaebook.plotting",
        "mean_band",
        _COPY,
        "matplotlib draws host arrays: a figure reads its data once",
    ),
    Allowed(
        "gaebook.lm.tinygpt",
        "sample",
        _SCALAR,
        "the early stop once every row has emitted EOS reads one bool per generated token",
    ),
    Allowed(
        "gaebook.lm.hf_policy",
        "forward",
        _COPY,
        "transformers' DynamicCache starts each layer's keys and values with torch.tensor([], device=...): "
        "an upload of an empty tensor, at the first forward pass into a new cache (once per sample call)",
    ),
    Allowed(
        "gaebook.lm.tinygpt",
        "from_policy",
        _COPY,
        "the critic is built on the CPU and copied to the policy's device once, before training",
    ),
    Allowed(
        "gaebook.lm.ppo",
        "sample_and_score",
        _COPY,
        "the tasks score text: once per iteration the prompts and rewards are uploaded and the responses read",
    ),
    Allowed(
        "gaebook.envs.cartpole",
        "__init__",
        _COPY,
        "the reset bounds are uploaded once, when the environment is built, so that no step uploads them",
    ),
    Allowed(
        "gaebook.envs.pendulum",
        "__init__",
        _COPY,
        "as for CartPole: the reset bounds are uploaded once, at construction",
    ),
    Allowed(
        "gaebook.lm.tasks",
        "_uniforms",
        _SCALAR,
        "prompts are text: each call draws all its uniforms at once on the generator's device and reads them once",
    ),
    Allowed(
        "gaebook.ppo",
        "train",
        _COPY,
        "the History is returned on the CPU: one copy per column, after the last iteration",
    ),
    Allowed(
        "gaebook.lm.ppo",
        "finetune",
        _COPY,
        "the LMHistory is returned on the CPU: one copy per entry, after the last iteration",
    ),
)


def _op_name(func: torch._ops.OpOverload) -> str:
    return f"{func.namespace}::{func.overloadpacket.__name__}"


def _gaebook_frame() -> tuple[str, str, str]:
    """``(module, function, "file:line")`` of the innermost gaebook function on the stack, or else of the
    innermost frame outside torch and this file. Comprehensions and nested functions count as the
    function around them."""
    frame: FrameType | None = sys._getframe(1)
    outside = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        code = frame.f_code
        if module.startswith("gaebook.") and not (code.co_name.startswith("<") or code.co_flags & inspect.CO_NESTED):
            break
        if outside is None and not module.startswith("torch") and frame.f_globals is not globals():
            outside = frame
        frame = frame.f_back
    found = frame or outside or sys._getframe(1)
    path = found.f_code.co_filename.split(os.sep)
    return found.f_globals.get("__name__", ""), found.f_code.co_name, f"{os.sep.join(path[-2:])}:{found.f_lineno}"


def _where() -> str:
    module, function, where = _gaebook_frame()
    return f"{module}.{function} ({where})"


def _on_device(x: object) -> bool:
    """Device data: a tensor off the CPU, or any fake tensor (a fake CPU tensor is a copy of device data)."""
    return isinstance(x, Tensor) and (isinstance(x, FakeTensor) or x.device.type != "cpu")


def _touches_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    device = kwargs.get("device")
    return any(_on_device(x) for x in tree_leaves((args, kwargs))) or (
        device is not None and torch.device(device).type != "cpu"
    )


def _answer(func: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A made-up result for an allowed read of a fake tensor (see the module docstring), or ``None``."""
    name = _op_name(func)
    if name in ("aten::_local_scalar_dense", "aten::item"):
        dtype = args[0].dtype
        return True if dtype == torch.bool else 0.0 if dtype.is_floating_point else 0
    if name in ("aten::is_nonzero", "aten::equal", "aten::allclose"):
        return True
    with unset_fake_temporarily():
        if name == "aten::_to_copy":
            return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        if name == "aten::copy_" and not isinstance(args[0], FakeTensor):
            return args[0].zero_()
    return None


class _Watch(TorchDispatchMode):
    """Checks every ATen call of a harness run; above the fake mode, so it sees calls first."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: object,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self.harness.fake:
            self.harness.leaves.update(
                (id(x), x)
                for x in tree_leaves((args, kwargs))
                if isinstance(x, FakeTensor) and x.requires_grad and x.is_leaf
            )
        generator = kwargs.get("generator")
        if generator is not None:
            self._check_generator(func, generator, args, kwargs)
        kind = transfer_kind(func, args, kwargs)
        if kind is not None and _touches_device(args, kwargs):
            module, function, _ = _gaebook_frame()
            name = _op_name(func)
            if not any(a.module == module and a.function == function and name in a.ops for a in self.harness.allowed):
                what = "a read of device data on the host" if kind == "read" else "a copy of host data to the device"
                raise HostSync(f"{name} in {_where()}: {what}")
            if self.harness.fake and kind == "read":
                answer = _answer(func, args, kwargs)
                if answer is not None:
                    return answer
        if self.harness.fake and not _touches_device(args, kwargs):  # host work runs for real
            with unset_fake_temporarily():
                return func(*args, **kwargs)
        if self.harness.fake:  # fake tensors hold no random numbers: some fake kernels refuse a generator
            kwargs = {**kwargs, "generator": None} if "generator" in kwargs else kwargs
        try:
            return func(*args, **kwargs)
        except RuntimeError as e:  # FakeTensorDeviceMismatchError, or CUDA's own error
            if "Expected all tensors to be on the same device" not in str(e):
                raise
            raise DeviceMismatch(f"{_op_name(func)} in {_where()}: {e}") from e

    def _check_generator(
        self, func: torch._ops.OpOverload, generator: torch.Generator, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        own = self.harness.fake and generator.initial_seed() in FAKE_SEEDS
        source = self.harness.device if own else generator.device
        tensors = [x for x in args if isinstance(x, Tensor)]
        target = torch.device(kwargs.get("device") or "cpu") if not tensors else tensors[0].device
        if source.type != target.type:
            raise DeviceMismatch(
                f"{_op_name(func)} in {_where()}: draws on {target} with a generator on {source} "
                f"(CUDA: Expected a '{target.type}' device type for generator but found '{source.type}')"
            )


# --- bindings that fake CUDA cannot run, sent to the ATen operations beneath them ---------------


def _is_mask(x: Tensor) -> bool:
    return x.dtype in (torch.bool, torch.uint8)


def _slice(x: Tensor, index: object) -> tuple[Tensor, list[Tensor | None]]:
    """PyTorch's ``applySlicing``: apply the basic parts of ``index`` as views, collect the tensor parts.

    Returns the view and the list of tensor indices for ``aten.index`` or ``aten.index_put_`` by
    dimension of the view (``None`` where a slice indexes), empty if ``index`` holds no tensor.
    """
    items = [torch.tensor(i) if isinstance(i, list) else i for i in (index if isinstance(index, tuple) else (index,))]
    if any(isinstance(i, bool) or (isinstance(i, Tensor) and i.ndim == 0 and _is_mask(i)) for i in items):
        raise NotImplementedError("indexing with a bool scalar is not emulated")
    specified = sum(
        (i.ndim if _is_mask(i) else 1) if isinstance(i, Tensor) else int(i is not None and i is not ...) for i in items
    )
    result, dim = x, 0
    tensors: list[Tensor | None] = []
    for item in items:
        if isinstance(item, Tensor) and item.ndim == 0:  # as PyTorch does: a 0-d integer index is read
            item = int(aten._local_scalar_dense.default(item))
        if isinstance(item, int):
            result = aten.select.int(result, dim, item)
        elif isinstance(item, slice):
            result = aten.slice.Tensor(result, dim, item.start, item.stop, 1 if item.step is None else item.step)
            dim += 1
        elif item is None:
            result = aten.unsqueeze.default(result, dim)
            dim += 1
        elif item is ...:
            dim += x.ndim - specified
        elif isinstance(item, Tensor):
            tensors += [None] * (dim - len(tensors)) + [item]
            dim += item.ndim if _is_mask(item) else 1
        else:
            raise TypeError(f"unsupported index {item!r}")
    return result, tensors


class _FakeCudaBindings(TorchFunctionMode):
    """For fake tensors: the bindings that need a CUDA device guard done with the ATen operations they
    call, and ``backward()`` giving zero gradients to ``leaves`` (see the module docstring)."""

    def __init__(self, leaves: weakref.WeakValueDictionary[int, Tensor]) -> None:
        super().__init__()
        self.leaves = leaves

    def __torch_function__(
        self, func: Callable, types: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if not (args and isinstance(args[0], FakeTensor)):
            return func(*args, **kwargs)
        if func is Tensor.backward:
            for leaf in self.leaves.values():
                leaf.grad = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
            self.leaves.clear()
            return None
        method = _BINDINGS.get(func)
        return func(*args, **kwargs) if method is None else method(*args, **kwargs)


def _getitem(x: Tensor, index: object) -> Tensor:
    result, tensors = _slice(x, index)
    if tensors:
        return aten.index.Tensor(result, tensors)
    return aten.alias.default(result) if result is x else result


def _setitem(x: Tensor, index: object, value: Tensor | float) -> None:
    result, tensors = _slice(x, index)
    # PyTorch makes a Python number a 0-d tensor on x's device
    v = value if isinstance(value, Tensor) else aten.scalar_tensor.default(value, dtype=x.dtype, device=x.device)
    if tensors:
        aten.index_put_.default(result, tensors, v)
    elif v.ndim == 0 and v.device.type == "cpu":  # PyTorch's copy_to: no copy from the host
        aten.fill_.Tensor(result, v)
    else:
        aten.copy_.default(result, v)


def _contiguous(x: Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    return x if x.is_contiguous(memory_format=memory_format) else aten.clone.default(x, memory_format=memory_format)


_BINDINGS: dict[Callable, Callable] = {
    Tensor.__getitem__: _getitem,
    Tensor.__setitem__: _setitem,
    Tensor.copy_: lambda x, src, non_blocking=False: aten.copy_.default(x, src, non_blocking),
    Tensor.contiguous: _contiguous,
    Tensor.__invert__: aten.bitwise_not.default,
    Tensor.__int__: lambda x: int(aten._local_scalar_dense.default(x)),
    Tensor.__index__: lambda x: int(aten._local_scalar_dense.default(x)),
    Tensor.__float__: lambda x: float(aten._local_scalar_dense.default(x)),
}


# --- the harness ---------------------------------------------------------------------------------


class _FakeCudaGenerator(torch.Generator):
    """A CPU generator that says it is on ``cuda:0``: what Python code sees of a CUDA generator."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cuda", 0)


class Harness:
    """Runs callables on the device under test: fake ``cuda:0`` (``fake=True``) or the current GPU.

    ``allowed`` is the allow-list of host transfers, :data:`ALLOWED` unless a test narrows it.
    """

    def __init__(self, *, fake: bool, allowed: tuple[Allowed, ...] = ALLOWED) -> None:
        self.fake, self.allowed = fake, allowed
        if fake:
            self.mode = FakeTensorMode(allow_non_fake_inputs=True)
            self.device = torch.device("cuda", 0)
        else:
            if not torch.cuda.is_available():
                raise RuntimeError(f"{DEVICE_VARIABLE}=cuda but torch.cuda.is_available() is False")
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._seeds = iter(FAKE_SEEDS)
        # fake tensors that require grad, by id, used since the last backward()
        self.leaves: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()

    @classmethod
    def from_environment(cls, allowed: tuple[Allowed, ...] = ALLOWED) -> Harness:
        """Fake CUDA, or a real GPU if ``GAEBOOK_TEST_DEVICE=cuda``."""
        choice = os.environ.get(DEVICE_VARIABLE, "fake")
        if choice not in ("fake", "cuda"):
            raise ValueError(f"{DEVICE_VARIABLE} must be 'fake' or 'cuda'; got {choice!r}")
        return cls(fake=choice == "fake", allowed=allowed)

    def tensor(self, x: Tensor) -> Tensor:
        """A copy of the CPU tensor ``x`` on the device under test (fake: shape, dtype and device only)."""
        if not self.fake:
            return x.to(self.device)
        with self.mode:
            return x.to(self.device)

    def module(self, module: M) -> M:
        """``module`` (built on the CPU) with its parameters and buffers moved to the device under test."""
        if not self.fake:
            return module.to(self.device)
        with self.mode:
            return module.to(self.device)

    def generator(self) -> torch.Generator:
        """A generator on the device under test (fake: a CPU generator that says ``cuda:0``)."""
        if not self.fake:
            return torch.Generator(self.device).manual_seed(0)
        generator = _FakeCudaGenerator()
        generator.manual_seed(next(self._seeds))
        return generator

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the device under test, raising a :class:`ConformanceError` at the
        first device mismatch or host transfer not allowed."""
        with ExitStack() as stack:
            if self.fake:
                stack.enter_context(self.mode)
                stack.enter_context(torch.no_grad())
                stack.enter_context(_FakeCudaBindings(self.leaves))
                stack.enter_context(warnings.catch_warnings())
                warnings.filterwarnings("ignore", "Accessing the data pointer of FakeTensor")  # copy.deepcopy
            stack.enter_context(_Watch(self))
            try:
                return fn(*args, **kwargs)
            except RuntimeError as e:
                if "not linked with support for cuda devices" not in str(e):
                    raise
                raise FakeCudaGap(f"{e}: a binding that fake CUDA cannot run; see {__name__}'s docstring") from e

    def assert_on_device(self, out: object) -> None:
        """Every tensor in ``out`` (nested in tuples, lists, dicts and dataclasses) is on the device under test."""
        tensors = list(_tensors(out))
        assert tensors, f"no tensor in {type(out).__name__}"
        for t in tensors:
            assert t.device == self.device, f"a {tuple(t.shape)} output is on {t.device}, not {self.device}"


def _tensors(x: object) -> Iterator[Tensor]:
    if isinstance(x, Tensor):
        yield x
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            yield from _tensors(getattr(x, f.name))
    elif isinstance(x, tuple | list):
        for item in x:
            yield from _tensors(item)
    elif isinstance(x, dict):
        for item in x.values():
            yield from _tensors(item)
