"""Measured results that the chapters quote: each the JSON record of one run of a benchmark.

Speed is never measured inside a chapter. A benchmark of the repository, run once on one machine,
writes its record here (``benchmarks/ppo_cartpole.py --json gaebook/results/ppo_cartpole.json``): its
ratios, settings, library versions, date and a note on the machine. The records ship with the
package, so a chapter opened in Colab, without the repository, quotes the same run as the book.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def available() -> list[str]:
    """The names of the records this package holds, e.g. ``["ppo_cartpole"]``."""
    return sorted(p.name.removesuffix(".json") for p in files(__name__).iterdir() if p.name.endswith(".json"))


def load(name: str) -> dict[str, Any]:
    """The record ``<name>.json``, as the benchmark wrote it (a value it could not measure is ``None``)."""
    resource = files(__name__).joinpath(f"{name}.json")
    if not resource.is_file():
        raise FileNotFoundError(f"no result named {name!r}; this gaebook holds {available()}")
    record: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return record
