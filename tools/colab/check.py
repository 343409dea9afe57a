"""Colab's package set as a test: what installing the chapters' gaebook changes in it, and the chapters run there.

``make colab-install`` and ``make colab`` drive it (see the Makefile); its commands:

* ``key``: a name for the environment built from Colab's set, gaebook's requirements and the install
  cells' own lines beside gaebook's, which changes when any of them does (not when any other part of
  pyproject.toml does).
* ``constraints``: Colab's versions (pip-freeze.txt beside this file) as a pip constraints file. A
  package Colab installed from a URL is pinned at that wheel's version, without its local label:
  PyPI's ``torch==2.11.0`` stands for Colab's ``torch 2.11.0+cpu`` build from PyTorch's own index.
* ``base [REPORT...]``: the packages of Colab's set the environment needs so that pip meets them as Colab
  has them: the fragile ones, those that must not be downgraded, nbclient to run the chapters, and each
  package of Colab's set that the installs resolve to (REPORT: ``pip install --dry-run --report``, one
  for each install).
* ``installs VERSION``: the pip install commands that install what every chapter's install cell installs,
  one line of shell-quoted arguments each: the requirement of the union of their extras at VERSION, then
  each other ``%pip install`` line of a cell (the verl page's, which installs verl, tensordict and pyvers
  with ``--ignore-requires-python --no-deps``), in the order of the chapters.
* ``diff BEFORE AFTER``: every package the install added, removed or changed between two
  ``pip freeze`` outputs; fails on any change of a fragile package, any downgrade of a package BEFORE holds
  (Colab's, at Colab's versions, and what they need) and the removal of a guarded one.
* ``imports``: a Python script importing every chapter's imports, for the environment's python to run.
* ``execute NOTEBOOK...``: runs each notebook alone in an empty folder under the running python's
  kernel (nbclient), and fails if any cell fails.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FREEZE = HERE / "pip-freeze.txt"

# Colab's kernel and front-end stack: an install that changes any of them breaks the session.
FRAGILE = ("ipython", "ipykernel", "jupyter-client", "notebook", "traitlets", "tornado", "pyzmq", "prompt-toolkit")
# What Colab ships and the chapters rely on: always in the environment, and an install may upgrade these,
# never remove them (nor downgrade them, like any other package).
GUARDED = ("torch", "numpy", "matplotlib", "scipy", "sphinx", "docutils")
# The installer and what runs the chapters in the environment, as Colab has them.
RUNNER = ("pip", "nbclient", "nbformat")
# Colab's CPU torch needs no CUDA libraries; PyPI's build of the same version brings its own, so Colab's
# versions of these (there for other libraries) must not constrain it.
CUDA = re.compile(r"^(nvidia-|cuda-|triton$)")
# An install cell's `%pip install` lines: the arguments of each.
PIP_LINE = re.compile(r"^\s*%pip install (.+)$", re.MULTILINE)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> dict[str, str]:
    """``{canonical name: version}`` from ``pip freeze`` output; a URL install's version from its wheel's name."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line or line.startswith("-"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            wheel = re.search(r"/([^/]+)-([^-/]+)-[^-/]+-[^-/]+-[^-/]+\.whl", unquote(url))
            if not wheel:
                continue  # a source tree or a git checkout: no version to compare, nothing PyPI has
            version = wheel[2]
        else:
            continue
        found[canonical(name.strip())] = version.strip()
    return found


def public(version: str) -> str:
    """The version without its local label: ``2.11.0+cpu`` -> ``2.11.0``."""
    return version.split("+", 1)[0]


def colab_versions() -> dict[str, str]:
    return parse_freeze(FREEZE.read_text())


def constraints() -> list[str]:
    return [f"{name}=={public(version)}" for name, version in sorted(colab_versions().items()) if not CUDA.match(name)]


def base(reports: list[dict]) -> list[str]:
    colab = colab_versions()
    resolved = {canonical(item["metadata"]["name"]) for report in reports for item in report.get("install", [])}
    names = set(FRAGILE) | set(GUARDED) | set(RUNNER) | (resolved & colab.keys())
    missing = sorted(names - colab.keys())
    if missing:
        raise SystemExit(f"not in Colab's package set ({FREEZE.name}): {missing}")
    return [f"{name}=={public(colab[name])}" for name in sorted(names) if not CUDA.match(name)]


def key() -> str:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10, where pytest brings tomli into the project's virtualenv
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own_lines = installs("")[1:]
    requirements = json.dumps([project["dependencies"], project["optional-dependencies"], own_lines], sort_keys=True)
    return hashlib.sha256(FREEZE.read_bytes() + requirements.encode()).hexdigest()[:16]


def notebooks() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def pip_lines(path: Path) -> list[list[str]]:
    """The arguments of each ``%pip install`` line of the install cell of the chapter at ``path``."""
    lines = [shlex.split(args) for args in PIP_LINE.findall(code_cells(path)[0])]
    if not lines or not re.fullmatch(r"gaebook\[[\w,]+\]==.+", lines[0][-1]):
        raise SystemExit(f"{path.name}: its install cell's first line installs no gaebook[...]==")
    return lines


def install_extras(path: Path) -> list[str]:
    return pip_lines(path)[0][-1].split("[", 1)[1].split("]", 1)[0].split(",")


def installs(version: str) -> list[list[str]]:
    """The pip install arguments that install what every chapter's install cell does, each install once."""
    extras: list[str] = []
    others: list[list[str]] = []
    for path in notebooks():
        extras += [e for e in install_extras(path) if e not in extras]
        others += [line for line in pip_lines(path)[1:] if line not in others]
    return [[f"gaebook[{','.join(extras)}]=={version}"], *others]


def version_key(version: str) -> tuple:
    from packaging.version import Version  # pip's own dependency: in every environment that has pip

    return (Version(public(version)),)


def diff(before: dict[str, str], after: dict[str, str]) -> tuple[list[str], list[str]]:
    """The report lines of every change, and the problems among them."""
    lines, problems = [], []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            lines.append(f"added    {name} {new}")
        elif new is None:
            lines.append(f"removed  {name} {old}")
        else:
            down = version_key(new) < version_key(old)
            lines.append(f"{'DOWNGRADED' if down else 'upgraded'} {name} {old} -> {new}")
            if down:
                problems.append(f"{name} downgraded from Colab's {old} to {new}")
        if name in FRAGILE:
            problems.append(f"{name}, one of Colab's fragile packages, changed: {old} -> {new}")
        elif name in GUARDED and new is None:
            problems.append(f"{name} removed")
    return lines, problems


def imports_script() -> str:
    """Every import of every chapter (its install cell aside), as one script."""
    statements: list[str] = []
    for path in notebooks():
        for source in code_cells(path)[1:]:
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    line = ast.unparse(node)
                    if line not in statements:
                        statements.append(line)
    return "\n".join(statements) + "\nprint(f'{len(__import__(\"sys\").modules)} modules imported')\n"


def execute(paths: list[Path], timeout: int) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as empty:
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": empty}})
            try:
                client.execute()
                status = "passed"
            except CellExecutionError as error:
                status = f"FAILED\n{str(error)[-3000:]}"
                failed += 1
        print(f"{path.name}: {status} in {time.perf_counter() - started:.0f} s", flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("key")
    sub.add_parser("constraints")
    sub.add_parser("base").add_argument("reports", type=Path, nargs="*")
    sub.add_parser("installs").add_argument("version")
    d = sub.add_parser("diff")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    sub.add_parser("imports")
    e = sub.add_parser("execute")
    e.add_argument("notebooks", type=Path, nargs="+")
    e.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    if args.command == "key":
        print(key())
    elif args.command == "constraints":
        print("\n".join(constraints()))
    elif args.command == "base":
        print("\n".join(base([json.loads(report.read_text()) for report in args.reports])))
    elif args.command == "installs":
        print("\n".join(shlex.join(line) for line in installs(args.version)))
    elif args.command == "diff":
        lines, problems = diff(parse_freeze(args.before.read_text()), parse_freeze(args.after.read_text()))
        print("\n".join(lines) if lines else "the install changed nothing")
        print(f"{len(lines)} packages changed")
        if problems:
            print("\n".join(["", "Colab's runtime would break:", *problems]))
            sys.exit(1)
        print("no fragile or downgraded package")
    elif args.command == "imports":
        print(imports_script(), end="")
    else:
        sys.exit(1 if execute(args.notebooks, args.timeout) else 0)


if __name__ == "__main__":
    main()
