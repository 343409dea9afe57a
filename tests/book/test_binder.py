"""Binder (repo2docker) builds environment.yml before it copies the repository, then runs postBuild
in the checkout: the CPU build of PyTorch must come from the first, gaebook from the second."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_brings_a_supported_python_and_the_cpu_build_of_pytorch_from_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert not any(isinstance(d, dict) for d in deps), (
        "no pip section: repo2docker installs it before the checkout exists, so `-e .` cannot work there"
    )
    pins = dict(d.split("=", 1) for d in deps if "=" in d)
    assert pins["pytorch"] == "*=cpu*", "the CPU build: nothing needs more, and it is the small one"
    assert pins["python"] in SpecifierSet(PROJECT["requires-python"])


def test_post_build_installs_gaebook_editable_with_the_book_extra(tmp_path):
    """Run postBuild with a stand-in ``python`` that records its arguments instead of installing."""
    post_build = ROOT / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only if it is executable"
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(post_build)], cwd=ROOT, env=env, check=True)
    calls = [shlex.split(line) for line in log.read_text().splitlines()]
    installs = [c for c in calls if c[:3] == ["-m", "pip", "install"]]
    assert len(installs) == 1, f"postBuild should install once with pip; it ran python with {calls}"
    args = installs[0][3:]
    assert "-e" in args, f"postBuild must install the checkout editable; it runs pip install {args}"
    target = args[args.index("-e") + 1]
    assert target.startswith("."), f"postBuild must install the checkout itself; it installs {target!r}"
    extras = Requirement("gaebook" + target.removeprefix(".")).extras
    assert extras == {"book"}, f"the chapters import the book extra; postBuild asks for {target!r}"
    assert extras <= PROJECT["optional-dependencies"].keys()
