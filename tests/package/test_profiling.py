"""gaebook.profiling.HostTransfers records each kind of host read and upload, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from gaebook import gae
from gaebook.profiling import HostTransfers, dispatched_ops

X = torch.tensor([0.0, 1.0, 2.0, 2.0])

# name: (call, the kind and ATen name of its transfer)
ON_THE_CPU: dict[str, tuple[Callable[[], object], str, str]] = {
    "item": (lambda: X.sum().item(), "read", "aten::_local_scalar_dense"),
    "bool": (lambda: bool(X.sum() > 0), "read", "aten::_local_scalar_dense"),
    "int": (lambda: int(X[1]), "read", "aten::_local_scalar_dense"),
    "float": (lambda: float(X[1]), "read", "aten::_local_scalar_dense"),
    "format": (lambda: f"{X.sum():.1f}", "read", "aten::_local_scalar_dense"),
    "0-d index": (lambda: X[X.argmax()], "read", "aten::_local_scalar_dense"),
    "equal": (lambda: torch.equal(X, X), "read", "aten::equal"),
    "allclose": (lambda: torch.allclose(X, X), "read", "aten::allclose"),
    "nonzero": (lambda: X.nonzero(), "read", "aten::nonzero"),
    "mask indexing": (lambda: X[X > 0], "read", "aten::index"),
    "masked_select": (lambda: X.masked_select(X > 0), "read", "aten::masked_select"),
    "unique": (lambda: X.unique(), "read", "aten::_unique2"),
    "bincount": (lambda: X.long().bincount(), "read", "aten::bincount"),
    "repeat_interleave": (lambda: X.long().repeat_interleave(X.long()), "read", "aten::repeat_interleave"),
    "torch.tensor": (lambda: torch.tensor([1.0, 2.0]), "upload", "aten::lift_fresh"),
    "torch.as_tensor": (lambda: torch.as_tensor([1.0, 2.0]), "upload", "aten::lift_fresh"),
    "torch.from_numpy": (lambda: torch.from_numpy(np.ones(2)), "upload", "aten::lift_fresh"),
}


@pytest.mark.parametrize("name", ON_THE_CPU)
def test_each_kind_of_transfer_is_recorded(name: str):
    call, kind, op = ON_THE_CPU[name]
    with HostTransfers() as transfers:
        call()
    assert [(e.kind, e.op) for e in transfers.events] == [(kind, op)]
    assert transfers.events[0].where.startswith("package/test_profiling.py:")


def test_inference_mode_reads_are_recorded_by_their_own_names():
    with torch.inference_mode(), HostTransfers() as transfers:
        X.sum().item()
        bool(X.sum())
    assert [e.op for e in transfers.reads] == ["aten::item", "aten::is_nonzero"]


def test_copies_between_host_and_device_are_recorded():
    """On fake CUDA tensors, which dispatch the copies a GPU would make."""
    with FakeTensorMode():
        x = torch.ones(3, device="cuda:0")
        with HostTransfers() as transfers:
            x.cpu()
            torch.ones(3).copy_(x)
            torch.tensor([1.0, 2.0], device="cuda:0")  # made on the host, then copied: two uploads
            x.to(torch.float64)  # on the device
            x.clone()
    assert [(e.kind, e.op) for e in transfers.events] == [
        ("read", "aten::_to_copy"),
        ("read", "aten::copy_"),
        ("upload", "aten::lift_fresh"),
        ("upload", "aten::_to_copy"),
    ]
    assert transfers.reads == transfers.events[:2] and transfers.uploads == transfers.events[2:]


def test_device_work_records_nothing():
    g = torch.Generator().manual_seed(0)
    r, v, nv = (torch.randn(4, 64, generator=g) for _ in range(3))
    term = torch.rand(4, 64, generator=g) < 0.1
    gamma = torch.full((4,), 0.99)
    with HostTransfers() as transfers:
        gae(r, v, nv, term, gamma=gamma, lam=0.95, mask=torch.rand(4, 64, generator=g) < 0.8, check_finite=False)
        X.long().repeat_interleave(2)  # a repeat count known on the host
        X[X.long()]  # an integer index tensor
        X.clone()[1:] = 0  # a number, made a 0-d tensor on the CPU: a scalar on a GPU
        torch.tensor(0.5)  # the same
    assert transfers.events == []
    assert sum(dispatched_ops(lambda: gae(r, v, nv, term, gamma=gamma, lam=0.95, check_finite=False)).values()) > 10


def test_the_value_check_of_gae_is_recorded_at_its_line():
    g = torch.Generator().manual_seed(0)
    r, v, nv = (torch.randn(4, 8, generator=g) for _ in range(3))
    with HostTransfers() as transfers:
        gae(r, v, nv, torch.zeros(4, 8, dtype=torch.bool), gamma=0.99, lam=0.95, check_finite=True)
    assert transfers.reads and all(e.where.startswith("gaebook/advantages.py:") for e in transfers.reads)
    assert transfers.uploads == []
