"""Print the lowest versions that pyproject.toml admits for gaebook and its benchmark extra.

``make floors`` installs exactly these (``name==floor``) and runs the package's tests, so every
``>=`` in pyproject.toml is a version that was tested, not a guess.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def floors(extras: tuple[str, ...] = ("bench",)) -> list[str]:
    """``name==version`` for every requirement of gaebook and ``extras``, at its ``>=`` bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for line in requirements:
        req = Requirement(line)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if len(lower) != 1:
            raise SystemExit(f"{line!r} in pyproject.toml has no single '>=' floor to test")
        pins[req.name] = lower[0]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    print("\n".join(floors(tuple(sys.argv[1:]) or ("bench",))))
