"""The fake-CUDA harness (fake_cuda.py) catches what it promises to, and runs correct code unchanged."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
import torch
from fake_cuda import ALLOWED, NO_FAKE_CUDA, Allowed, DeviceMismatch, FakeCudaGap, Harness, HostSync, _getitem, _setitem
from torch import Tensor

from gaebook import gae

pytestmark = NO_FAKE_CUDA


@pytest.fixture
def harness() -> Harness:
    return Harness.from_environment()


@pytest.fixture
def fake() -> Harness:
    return Harness(fake=True)


def test_the_device_under_test_is_cuda(harness: Harness):
    x = harness.tensor(torch.ones(3))
    assert x.device.type == "cuda" and x.device == harness.device
    harness.assert_on_device(harness.run(torch.add, x, 1.0))


def test_an_output_on_the_cpu_fails_the_device_check(harness: Harness):
    x = harness.tensor(torch.ones(3))
    with pytest.raises(AssertionError, match="is on cpu"):
        harness.assert_on_device((x, torch.ones(2)))


def test_mixing_devices_is_a_device_mismatch(harness: Harness):
    x = harness.tensor(torch.ones(3))
    with pytest.raises(DeviceMismatch, match="aten::add"):
        harness.run(lambda: x + torch.ones(3))
    harness.assert_on_device(harness.run(lambda: x + torch.tensor(2.0)))  # a 0-d CPU tensor is a scalar, as on CUDA


READS = {
    "item": lambda x: x.sum().item(),
    "bool": lambda x: bool(x.sum() > 0),
    "int": lambda x: int(x[0]),
    "float": lambda x: float(x[0]),
    "tolist": lambda x: x.tolist(),
    "cpu": lambda x: x.cpu(),
    "mask indexing": lambda x: x[x > 0],
    "0-d index": lambda x: x[x.argmax()],
    "equal": lambda x: torch.equal(x, x),
}


@pytest.mark.parametrize("name", READS)
def test_reading_device_data_on_the_host_is_a_host_sync(harness: Harness, name: str):
    x = harness.tensor(torch.arange(3.0))
    with pytest.raises(HostSync, match="read of device data"):
        harness.run(READS[name], x)


UPLOADS = {
    "torch.tensor": lambda x: torch.tensor([1.0, 2.0, 3.0], device=x.device),
    "to": lambda x: torch.ones(3).to(x.device),
    "copy_": lambda x: x.copy_(torch.ones(3)),
    "setitem": lambda x: x.__setitem__(slice(0, 2), torch.ones(2)),
}


@pytest.mark.parametrize("name", UPLOADS)
def test_copying_host_data_to_the_device_is_a_host_sync(harness: Harness, name: str):
    x = harness.tensor(torch.arange(3.0))
    with pytest.raises(HostSync, match="copy of host data"):
        harness.run(UPLOADS[name], x)


def test_host_tensors_stay_real_and_readable(harness: Harness):
    x = harness.tensor(torch.arange(3.0))

    def run() -> tuple[Tensor, float]:
        host = torch.tensor([1.0, 2.0, 3.0])  # made from Python data on the host: no transfer
        return x * 2, host.sum().item()

    out, total = harness.run(run)
    harness.assert_on_device(out)
    assert total == 6.0


def rollout(harness: Harness) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    r, v, nv = (harness.tensor(torch.randn(2, 8, generator=g)) for _ in range(3))
    return r, v, nv, harness.tensor(torch.rand(2, 8, generator=g) < 0.2)


def test_an_allowed_read_passes_and_the_same_read_elsewhere_does_not():
    """gae's check_finite is on the allow-list; without the list, its reads are host syncs."""
    allowed = Harness.from_environment()
    advantages, returns = allowed.run(gae, *rollout(allowed), gamma=0.99, lam=0.95, check_finite=True)
    allowed.assert_on_device((advantages, returns))
    strict = Harness.from_environment(allowed=())
    with pytest.raises(HostSync, match=r"gaebook\.advantages\._check_inputs"):
        strict.run(gae, *rollout(strict), gamma=0.99, lam=0.95, check_finite=True)


def test_every_allowed_function_exists():
    for a in ALLOWED:
        assert f"def {a.function}(" in inspect.getsource(importlib.import_module(a.module)), a


def test_a_generator_on_another_device_than_its_draws_is_a_device_mismatch(harness: Harness):
    x = harness.tensor(torch.ones(3))
    on_device = harness.generator()
    assert on_device.device.type == "cuda"
    harness.assert_on_device(harness.run(torch.rand, 3, generator=on_device, device=x.device))
    with pytest.raises(DeviceMismatch, match="generator on cuda"):
        harness.run(torch.rand, 3, generator=on_device)  # drawn on the CPU
    with pytest.raises(DeviceMismatch, match="generator on cpu"):
        harness.run(torch.rand, 3, generator=torch.Generator(), device=x.device)
    with pytest.raises(DeviceMismatch, match="generator on cpu"):
        harness.run(torch.multinomial, x, 1, generator=torch.Generator())


# --- fake CUDA only ------------------------------------------------------------------------------


def test_an_allowed_read_of_fake_data_is_answered():
    """True for a bool, 0 for a number, zeros for a copy to the CPU: see fake_cuda's docstring."""

    def read(x: Tensor) -> tuple[bool, float, Tensor]:
        return bool((x >= 0).all()), x.sum().item(), x.cpu()

    reads = frozenset({"aten::_local_scalar_dense", "aten::_to_copy"})
    allowed = Harness(fake=True, allowed=(Allowed(__name__, "read", reads, "a test of the answers"),))
    flag, number, copy = allowed.run(read, allowed.tensor(torch.arange(3.0)))
    assert flag is True and number == 0.0 and torch.equal(copy, torch.zeros(3))
    strict = Harness(fake=True)
    with pytest.raises(HostSync, match=r"in test_fake_cuda_harness\.read"):
        strict.run(read, strict.tensor(torch.arange(3.0)))


def test_a_binding_fake_cuda_cannot_run_says_so(fake: Harness):
    x = fake.tensor(torch.arange(3.0))
    with pytest.raises(FakeCudaGap, match="a binding that fake CUDA cannot run"):
        fake.run(x.nonzero)


INDICES: list[Any] = [
    0,
    -1,
    slice(1, 3),
    slice(None, None, 2),
    (slice(None), 2),
    (..., 1),
    (None, 1),
    (1, ..., None),
    (slice(None), torch.tensor([0, 2])),
    (torch.tensor([[0], [1]]), torch.tensor([1, 2])),
    torch.tensor([[True, False, True, False], [False, True, True, True], [True, True, False, False]]),
    [0, 2],
    (torch.tensor([2, 0]), slice(1, None)),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing_without_the_device_guard_is_pytorchs_indexing(index: Any):
    """The emulation that fake CUDA needs (fake_cuda._getitem and _setitem), checked on real tensors."""
    x = torch.arange(12.0).reshape(3, 4)
    torch.testing.assert_close(_getitem(x, index), x[index])
    for value in (-1.0, torch.full_like(x[index], -2.0)):
        expected, got = x.clone(), x.clone()
        expected[index] = value
        _setitem(got, index, value)
        torch.testing.assert_close(got, expected)


def test_fake_indexing_gives_the_shapes_of_real_indexing(fake: Harness):
    x = torch.arange(12.0).reshape(3, 4)
    y = fake.tensor(x)
    for index in INDICES:
        if isinstance(index, Tensor) and index.dtype == torch.bool:
            continue  # the shape depends on the mask's values: a host sync on CUDA (see READS)
        out = fake.run(lambda i=index: y[i])
        assert out.shape == x[index].shape and out.device == fake.device


def test_backward_gives_zero_gradients_to_the_fake_leaves_used(fake: Harness):
    layer = fake.module(torch.nn.Linear(3, 2))
    unused = fake.module(torch.nn.Linear(3, 2))
    x = fake.tensor(torch.ones(5, 3))

    def run() -> None:
        layer(x).square().sum().backward()
        torch.optim.Adam(layer.parameters(), fused=True).step()

    fake.run(run)
    assert layer.weight.grad is not None and layer.weight.grad.shape == (2, 3)
    assert layer.weight.grad.device == fake.device
    assert unused.weight.grad is None
