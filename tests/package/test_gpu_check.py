"""tools/gpu_check.py: without a GPU it says what it would run; its hot paths run (here on the CPU); its
last step runs the GAE benchmark on the GPU, whose ``--device`` refuses a device that is not there."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gaebook.profiling import HostTransfers, Transfer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.py"
BENCHMARK = ROOT / "benchmarks" / "gae_kernels.py"


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs every check")
def test_without_a_gpu_it_exits_0_and_says_what_it_would_run():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "nothing was run" in done.stdout
    for planned in (
        "GAEBOOK_TEST_DEVICE=cuda",
        'set_sync_debug_mode("error")',
        "nbval",
        "gae_kernels.py --device cuda",
    ):
        assert planned in done.stdout


gpu_check = load_script(SCRIPT)
benchmark = load_script(BENCHMARK)


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


def test_the_last_check_runs_the_benchmark_on_the_gpu_checked(monkeypatch: pytest.MonkeyPatch):
    commands = []
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda command, **kwargs: commands.append((command, kwargs)))
    *_, (name, last) = gpu_check.checks().items()
    last(torch.device("cuda", 0))
    [(command, kwargs)] = commands
    assert command[0] == sys.executable and Path(kwargs["cwd"]) / command[1] == BENCHMARK, (name, command)
    assert kwargs["check"]  # the benchmark exits with 1 when it misses a target: the check fails
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert benchmark.parse_args(command[2:]).device == torch.device("cuda", 0)


def test_the_benchmark_runs_on_the_cpu_unless_told_otherwise():
    assert benchmark.parse_args([]).device == torch.device("cpu")
    assert benchmark.parse_args(["--quick", "--device", "cpu"]).device == torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "available", "says"),
    [
        ("cuda", False, "'cuda': no CUDA device here (torch.cuda.is_available() is False)"),
        ("cuda:0", False, "'cuda:0': no CUDA device here"),
        ("cuda:1", True, "'cuda:1': no such CUDA device here (1 found)"),
        ("gpu", True, "'gpu' is not a device: use cpu or cuda"),
        ("mps", True, "'mps': the benchmark runs on cpu or cuda"),
    ],
)
def test_the_benchmark_refuses_a_device_it_cannot_use_with_a_usage_message(
    device: str, available: bool, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(available))
    with pytest.raises(SystemExit) as exit_:
        benchmark.parse_args(["--device", device])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage:") and f"error: argument --device: {says}" in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the benchmark would run")
def test_without_a_gpu_the_benchmark_on_cuda_stops_at_once_without_a_traceback():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--device", "cuda"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "no CUDA device here" in done.stderr and "Traceback" not in done.stderr
