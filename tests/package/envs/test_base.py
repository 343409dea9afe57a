"""Tests of gaebook.envs.base beyond the contract suite: how devices are compared.

``torch.Generator("cuda").device`` reads ``cuda``, without an index, while tensors on the current
CUDA device report ``cuda:0``: both must count as the same device. These tests need no GPU: they
compare ``torch.device`` objects, with the current CUDA device set by hand.
"""

from __future__ import annotations

import pytest
import torch

from gaebook.envs import CartPole
from gaebook.envs.base import resolve_device, same_device


@pytest.fixture
def current_cuda_device_is_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


@pytest.mark.usefixtures("current_cuda_device_is_1")
def test_a_device_without_an_index_is_the_current_one():
    cuda, cuda0, cuda1 = torch.device("cuda"), torch.device("cuda", 0), torch.device("cuda", 1)
    assert resolve_device(cuda) == cuda1 and resolve_device(cuda0) == cuda0
    # a generator made as torch.Generator("cuda"), asked for by its own device or by the resolved one
    assert same_device(cuda, cuda)
    assert same_device(cuda1, cuda) and same_device(cuda, cuda1) and same_device("cuda:1", "cuda")
    assert not same_device(cuda0, cuda) and not same_device(cuda, cuda0)
    assert same_device(cuda0, cuda0) and not same_device(cuda0, cuda1)


def test_devices_of_different_types_differ_without_asking_for_the_current_one(monkeypatch):
    def no_cuda() -> int:
        raise AssertionError("the current CUDA device was asked for")

    monkeypatch.setattr(torch.cuda, "current_device", no_cuda)
    assert not same_device(torch.device("cpu"), torch.device("cuda"))
    assert not same_device(torch.device("cuda", 0), torch.device("meta"))
    assert not same_device(torch.device("meta"), torch.device("cpu"))


def test_the_cpu_and_meta_carry_no_index():
    assert resolve_device("cpu:0") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert same_device("cpu", "cpu:0") and resolve_device("meta") == torch.device("meta")
    assert torch.empty(0, device="cpu:0").device == resolve_device("cpu:0")  # as PyTorch places tensors


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_generator_is_accepted():
    for device in (None, "cuda", torch.device("cuda", torch.cuda.current_device())):
        env = CartPole((4,), generator=torch.Generator("cuda").manual_seed(0), device=device)
        assert env.device == torch.empty(0, device="cuda").device
        assert env.reset().device == env.device
