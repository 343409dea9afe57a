"""What every chapter gives a reader: exercises with hidden solutions at its end, and code that
runs on its own in Colab or Binder, where only its install cell's ``pip install gaebook[notebook]`` (with
the extras of the libraries the chapter runs: ``sb3``, ``hf``, ``trl``, ``verl``) has been done."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# An opening fence of an exercise or solution directive, its argument, and its option lines.
DIRECTIVE = re.compile(
    r"^ {0,3}(?:`{3,}|:{3,})\{(?P<kind>exercise|solution|solution-start)\}[ \t]*(?P<arg>\S*)[ \t]*\n"
    r"(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)",
    re.MULTILINE,
)


def markdown(nb: nbformat.NotebookNode) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def code(nb: nbformat.NotebookNode) -> list[str]:
    """The code cells after the install cell, which is the only one that may touch pip or sys."""
    return [c.source for c in nb.cells if c.cell_type == "code"][1:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_chapter_ends_with_exercises_each_with_a_hidden_solution(path):
    text = markdown(nbformat.read(path, as_version=4))
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert sections and sections[-1] == "Exercises", f"the last section must be '## Exercises', not {sections[-1:]}"
    exercises: list[str] = []
    solved: list[str] = []
    for match in DIRECTIVE.finditer(text[text.rindex("\n## Exercises") :]):
        options = dict(re.findall(r":([\w-]+):[ \t]*(.*)", match["options"]))
        if match["kind"] == "exercise":
            assert "label" in options, f"an exercise without :label: at {match.group(0)!r}"
            exercises.append(options["label"])
        else:
            assert match["arg"] == (exercises[-1] if exercises else None), (
                f"the solution to {match['arg']!r} must follow its exercise"
            )
            assert "dropdown" in options.get("class", "").split(), f"the solution to {match['arg']} must be a dropdown"
            solved.append(match["arg"])
    assert exercises, "no exercises"
    assert solved == exercises, "every exercise needs exactly one solution, right after it"


def test_exercise_labels_are_unique_across_the_book():
    labels = [
        label
        for path in NOTEBOOKS
        for label in re.findall(r"^:label:[ \t]*(\S+)", markdown(nbformat.read(path, as_version=4)), re.MULTILINE)
    ]
    assert len(labels) == len(set(labels)), sorted(label for label in labels if labels.count(label) > 1)


def installed_with(extras: tuple[str, ...]) -> set[str]:
    """The top-level modules that ``pip install gaebook[<extras>]`` brings, with their dependencies.

    The first level comes from pyproject.toml (what Colab installs), an extra's ``gaebook[...]``
    expanded there too; the rest from the installed packages' metadata.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    todo.append(Requirement(f"{project['name']}[{','.join(extras)}]"))
    dists: set[str] = set()
    own_extras: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == project["name"]:
            for extra in req.extras - own_extras:
                own_extras.add(extra)
                todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
            continue
        if name in dists:
            continue
        dists.add(name)
        try:
            children = [Requirement(r) for r in requires(req.name) or []]
        except PackageNotFoundError:
            continue  # not installed here: nothing a chapter could import
        wanted = req.extras | {""}
        todo += [c for c in children if c.marker is None or any(c.marker.evaluate({"extra": e}) for e in wanted)]
    return {
        module
        for module, owners in packages_distributions().items()
        if dists & {canonicalize_name(owner) for owner in owners}
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_chapter_imports_only_what_its_install_cell_brings(path):
    nb = nbformat.read(path, as_version=4)
    install = next(c.source for c in nb.cells if c.cell_type == "code")
    extras = tuple(re.search(r"gaebook\[([\w,]+)\]", install)[1].split(","))
    available = installed_with(extras) | set(sys.stdlib_module_names) | {"gaebook"}
    imported = set()
    for source in code(nb):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported <= available, f"not installed by gaebook[{','.join(extras)}]: {sorted(imported - available)}"
    for extra in extras[1:]:  # beyond the notebook extra, a chapter installs a library only to run it
        only_this = installed_with(extras) - installed_with(tuple(e for e in extras if e != extra))
        assert imported & only_this, f"the install cell brings the {extra} extra, but the chapter imports nothing of it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_chapter_reads_no_file_of_the_checkout(path):
    local = re.compile(r"\bopen\(|\bPath\(|pathlib|\.\./|__file__|os\.chdir|sys\.path|np\.load\(|torch\.load\(")
    for source in code(nbformat.read(path, as_version=4)):
        assert not local.search(source), f"a chapter opened in Colab has no checkout:\n{source}"
