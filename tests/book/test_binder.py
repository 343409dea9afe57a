"""Binder (repo2docker) builds environment.yml before it copies the repository, then runs postBuild
in the checkout: the CPU build of PyTorch must come from the first, gaebook from the second."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_brings_python_and_the_cpu_build_of_pytorch_from_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert "pytorch=*=cpu*" in env["dependencies"], "the CPU build: nothing needs more, and it is the small one"
    assert not any(isinstance(d, dict) for d in env["dependencies"]), (
        "no pip section: repo2docker installs it before the checkout exists, so `-e .` cannot work there"
    )


def test_post_build_installs_gaebook_with_the_book_extra():
    post_build = ROOT / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only if it is executable"
    assert 'pip install --no-cache-dir -e ".[book]"' in post_build.read_text()
