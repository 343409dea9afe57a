"""The student edition: the book's notebooks and site without the solutions to the exercises.

``python tools/student.py notebooks OUT`` writes every notebook of ``book/`` to ``OUT`` with its
solutions removed: each ``{solution}`` directive (backtick or colon fence, of any length, nested
code blocks included) and everything between ``{solution-start}`` and ``{solution-end}``, code
cells too. The exercises stay.

``python tools/student.py site OUT`` builds the HTML site into ``OUT`` from the student notebooks,
each with the outputs of the full notebook's execution in the jupyter-cache of ``make book``
(``_build/.jupyter_cache``), put in a jupyter-cache of their own: the cells that stay are the same
cells, so nothing is executed again.
(sphinx-exercise's ``hide_solutions`` is set too, but it cannot hide a gated solution's code cells:
they are gone from the notebooks before Sphinx reads them.)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from editions import ROOT, EditionCache, build, executed

# A fence opens with 3+ backticks or colons, indented by at most 3 spaces (CommonMark, MyST).
_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}")


@dataclass
class _Fence:
    char: str
    length: int
    name: str | None  # the directive's name; None for a code block

    def closed_by(self, line: str) -> bool:
        stripped = line.strip()
        return len(line) - len(line.lstrip(" ")) <= 3 and len(stripped) >= self.length and set(stripped) == {self.char}


def _open_fence(line: str) -> _Fence | None:
    match = _OPEN.match(line)
    if match is None:
        return None
    fence, info = match["fence"], match["info"]
    if fence[0] == "`" and "`" in info:  # not a fence: an inline code span such as ```x```
        return None
    directive = _DIRECTIVE.match(info)
    if fence[0] == ":" and directive is None:  # a colon fence is always a directive
        return None
    return _Fence(fence[0], len(fence), directive["name"] if directive else None)


def _strip_text(text: str, gated: bool, where: str) -> tuple[str, bool]:
    """Remove solutions from one markdown cell.

    ``gated`` says whether the cell starts inside a ``{solution-start}`` … ``{solution-end}``
    region; the second result says whether it ends inside one. A cell without solutions comes
    back unchanged.
    """
    kept: list[str] = []
    stack: list[_Fence] = []  # the open fences, innermost last
    dropping_from: int | None = None  # depth of the {solution} fence being removed
    dropped_any = after_drop = False
    for line in text.split("\n"):
        if stack and stack[-1].closed_by(line):
            closed = stack.pop()
            if dropping_from == len(stack):
                dropping_from, dropped_any, after_drop = None, True, True
                continue
            if closed.name == "solution-end":
                if not gated:
                    raise ValueError(f"{where}: {{solution-end}} without {{solution-start}}")
                gated, dropped_any, after_drop = False, True, True
                continue
        elif not (stack and stack[-1].name is None) and (fence := _open_fence(line)) is not None:
            stack.append(fence)
            if fence.name == "solution" and dropping_from is None and not gated:
                dropping_from = len(stack) - 1
            elif fence.name == "solution-start":
                if gated:
                    raise ValueError(f"{where}: {{solution-start}} inside another solution")
                gated = True
        if dropping_from is not None or gated:
            dropped_any = True
            continue
        if after_drop and not line.strip() and (not kept or not kept[-1].strip()):
            continue  # a blank line after a removed block, where one already separates
        after_drop = False
        kept.append(line)
    if stack:
        raise ValueError(f"{where}: a fence opened with {stack[-1].char * stack[-1].length} is never closed")
    if not dropped_any:
        return text, gated
    return "\n".join(kept).strip("\n"), gated


def strip_solutions(notebook: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of ``notebook`` without its solutions; ``name`` is used in error messages.

    Raises:
        ValueError: if a fence is never closed or ``{solution-start}``/``{solution-end}`` do not
            pair up, since the student copy could then leak a solution or lose an exercise.
    """
    if not isinstance(notebook, nbformat.NotebookNode):
        raise TypeError(f"notebook must be an nbformat.NotebookNode, got {type(notebook).__name__}")
    student = copy.deepcopy(notebook)
    cells = []
    gated = False
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "markdown":
            if not gated:
                cells.append(cell)
            continue
        text, gated = _strip_text(cell.source, gated, f"{name}, cell {index}")
        if text.strip():
            cell.source = text
            cells.append(cell)
    if gated:
        raise ValueError(f"{name}: {{solution-start}} without {{solution-end}}")
    student.cells = cells
    return student


def write_student_notebooks(source: Path, out: Path) -> list[Path]:
    """Write each ``*.ipynb`` of ``source`` without solutions to ``out``; return the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(strip_solutions(notebook, path.name), target)
        written.append(target)
    return written


# What the book's build reads from the repository's root besides the notebooks.
SHARED = ("_toc.yml", "references.bib", "_static", "_templates", "tools")


def write_student_sources(source: Path, student_cache: Path) -> None:
    """The book's sources in ``source``, every notebook without its solutions, and a jupyter-cache in
    ``student_cache`` that holds each of them with the outputs, and the execution record, of the full
    notebook's execution in the book's jupyter-cache.

    Raises:
        ValueError: if a notebook has no execution in the cache (``make book`` first).
    """
    import shutil

    shutil.rmtree(source, ignore_errors=True)
    students = EditionCache(student_cache)
    (source / "book").mkdir(parents=True)
    for name in SHARED:
        (source / name).symlink_to(ROOT / name)
    # The book's configuration, without the links to other editions: the translations are of the book,
    # solutions included. (A Sphinx override cannot do this: Jupyter Book applies _config.yml's
    # sphinx.config after the overrides.)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["sphinx"]["config"].pop("book_editions", None)
    (source / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    for page in sorted((ROOT / "book").iterdir()):
        if page.suffix != ".ipynb":
            (source / "book" / page.name).symlink_to(page)
            continue
        data, with_outputs = executed(nbformat.read(page, as_version=4), page.name)
        target = source / "book" / page.name
        stripped = strip_solutions(with_outputs, page.name)
        nbformat.write(stripped, target)
        students.add(stripped, target, data)


def build_student_site(out: Path) -> int:
    """Build the site without solutions into ``out`` (warnings are errors); return Sphinx's status."""
    source, student_cache = out.resolve().parent / "src", out.resolve().parent / ".jupyter_cache"
    write_student_sources(source, student_cache)
    return build(source, out, student_cache, hide_solutions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["notebooks", "site"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.what == "notebooks":
        for path in write_student_notebooks(ROOT / "book", args.out):
            print(path)
        return 0
    return build_student_site(args.out)


if __name__ == "__main__":
    sys.exit(main())
