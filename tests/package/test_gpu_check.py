"""tools/gpu_check.py: without a GPU it says what it would run; its hot paths run (here on the CPU)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gaebook.profiling import HostTransfers, Transfer

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs every check")
def test_without_a_gpu_it_exits_0_and_says_what_it_would_run():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "nothing was run" in done.stdout
    for planned in ("GAEBOOK_TEST_DEVICE=cuda", 'set_sync_debug_mode("error")', "nbval", "gae_kernels.py"):
        assert planned in done.stdout


gpu_check = load_script()


class StrictOnTheCpu:
    """Stands in for ``gpu_check.strict``: records the host transfers made while it is on."""

    def __init__(self) -> None:
        self.mode: HostTransfers | None = None
        self.events: list[Transfer] = []
        self.regions = 0

    def __call__(self, device: torch.device, on: bool) -> None:
        if on and self.mode is None:
            self.mode = HostTransfers().__enter__()
            self.regions += 1
        elif not on and self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.events += self.mode.events
            self.mode = None


@pytest.mark.parametrize("name", list(gpu_check.HOT_PATHS))
def test_each_hot_path_runs_on_the_cpu_without_host_transfers(name: str, monkeypatch: pytest.MonkeyPatch):
    """The checks the script makes on a GPU, here with HostTransfers in place of the sync debug mode."""
    strict = StrictOnTheCpu()
    monkeypatch.setattr(gpu_check, "strict", strict)
    gpu_check.HOT_PATHS[name](torch.device("cpu"))
    assert strict.regions == 1 and strict.mode is None  # one region checked, and closed
    assert strict.events == []
