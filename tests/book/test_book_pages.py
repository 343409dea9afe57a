"""What every chapter's page owes its reader beyond its prose: solutions that run, code that fits."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# The width of a code cell's box on the site, in characters of its monospace font.
CODE_WIDTH = 88
SOLUTION_START = re.compile(r"^ {0,3}(`{3,}|:{3,})\{solution-start\}", re.MULTILINE)
SOLUTION_END = re.compile(r"^ {0,3}(`{3,}|:{3,})\{solution-end\}", re.MULTILINE)
SOLUTION = re.compile(r"^ {0,3}(`{3,}|:{3,})\{solution\}", re.MULTILINE)


def solutions(nb: nbformat.NotebookNode) -> list[list[nbformat.NotebookNode]]:
    """The cells between each {solution-start} and its {solution-end}."""
    found: list[list[nbformat.NotebookNode]] = []
    inside = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and SOLUTION_END.search(cell.source):
            inside = False
        if inside:
            found[-1].append(cell)
        if cell.cell_type == "markdown" and SOLUTION_START.search(cell.source):
            inside = True
            found.append([])
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_is_code_that_runs_and_checks_what_it_says(path):
    nb = nbformat.read(path, as_version=4)
    plain = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and SOLUTION.search(c.source)]
    assert not plain, f"cells {plain}: a solution in a {{solution}} directive does not run: use solution-start/end"
    for k, cells in enumerate(solutions(nb)):
        code = [c.source for c in cells if c.cell_type == "code"]
        assert code, f"solution {k} has no code cell"
        assert any(re.search(r"\bassert\b|\bglue\(|\bcheck_\w+\(", s) for s in code), (
            f"solution {k} checks nothing it states: assert it, or glue its numbers into its text"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_fits_its_box(path):
    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    # The install cell is collapsed on the page, and its text is the same in every chapter
    # (tests/book/test_notebooks.py): it is the one cell left out.
    wide = [(i, line) for i, c in code[1:] for line in c.source.split("\n") if len(line) > CODE_WIDTH]
    assert not wide, (
        f"{len(wide)} code lines wider than {CODE_WIDTH} characters; the first, cell {wide[0][0]}: {wide[0][1]!r}"
    )
