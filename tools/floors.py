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


def requirements(project: dict, extras: tuple[str, ...]) -> list[Requirement]:
    """gaebook's requirements and those of ``extras``, an extra's ``gaebook[...]`` expanded in place."""
    found = [Requirement(line) for line in project["dependencies"]]
    todo = list(extras)
    seen: set[str] = set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in map(Requirement, project["optional-dependencies"][extra]):
            if req.name == project["name"]:
                todo += sorted(req.extras)
            else:
                found.append(req)
    return found


def floors(extras: tuple[str, ...] = ("bench",)) -> list[str]:
    """``name==version`` for every requirement of gaebook and ``extras``, at its ``>=`` bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    for req in requirements(project, extras):
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if len(lower) != 1:
            raise SystemExit(f"{req} in pyproject.toml has no single '>=' floor to test")
        pins[req.name] = lower[0]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    print("\n".join(floors(tuple(sys.argv[1:]) or ("bench",))))
