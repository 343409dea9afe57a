"""tools/student.py: the student notebooks keep every exercise and lose every solution."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("student", ROOT / "tools" / "student.py")
student = sys.modules["student"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)


def strip(*cells: str | nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Strip a notebook made of ``cells`` (a string is a markdown cell)."""
    nb = new_notebook(cells=[new_markdown_cell(c) if isinstance(c, str) else c for c in cells])
    return student.strip_solutions(nb).cells


EXERCISE = "```{exercise}\n:label: ex1\n\nCompute $\\delta_t$.\n```"


def test_a_backtick_solution_with_nested_code_goes_and_the_exercise_stays():
    solution = "````{solution} ex1\n:class: dropdown\n\n```python\nprint(1)\n```\n\nSo it is 1.\n````"
    (cell,) = strip(f"## Exercises\n\n{EXERCISE}\n\n{solution}\n\nAfter.")
    assert cell.source == f"## Exercises\n\n{EXERCISE}\n\nAfter."


def test_a_three_backtick_solution_and_a_colon_fence_solution_go():
    three = "```{solution} ex1\n:class: dropdown\n\nText with `code` and $x$.\n```"
    colon = ":::{solution} ex2\nThe answer.\n:::"
    (cell,) = strip(f"{EXERCISE}\n\n{three}\n\n{colon}")
    assert cell.source == EXERCISE


def test_a_solution_fence_ends_only_at_a_closing_fence_as_long():
    solution = "`````{solution} ex1\n````{note}\n```\nnot the end\n```\n````\nstill inside\n`````"
    (cell,) = strip(f"{EXERCISE}\n\n{solution}\n\nKept.")
    assert cell.source == f"{EXERCISE}\n\nKept."


def test_a_solution_inside_a_code_block_is_text_and_stays():
    text = "How to write one:\n\n````markdown\n```{solution} ex1\nAnswer.\n```\n````"
    (cell,) = strip(text)
    assert cell.source == text


def test_a_gated_solution_takes_its_code_cells_with_it():
    cells = strip(
        EXERCISE,
        "```{solution-start} ex1\n:class: dropdown\n```\nFirst we compute:",
        new_code_cell("x = 1"),
        "and then\n```{solution-end}\n```\nNext section.",
        new_code_cell("y = 2"),
    )
    assert [c.source for c in cells] == [EXERCISE, "Next section.", "y = 2"]


def test_a_notebook_without_solutions_is_unchanged():
    nb = new_notebook(cells=[new_markdown_cell("# T\n\ntext\n"), new_code_cell("x = 1")])
    assert student.strip_solutions(nb) == nb


@pytest.mark.parametrize(
    "cells, message",
    [
        (["````{solution} ex1\nnever closed\n```"], "never closed"),
        (["```{solution-start} ex1\n```", "no end"], "without {solution-end}"),
        (["```{solution-end}\n```"], "without {solution-start}"),
    ],
    ids=["unclosed fence", "start without end", "end without start"],
)
def test_malformed_solutions_raise_rather_than_leak(cells, message):
    with pytest.raises(ValueError, match=message):
        strip(*cells)


def test_a_non_notebook_is_a_type_error():
    with pytest.raises(TypeError, match="notebook"):
        student.strip_solutions({"cells": []})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_book_notebooks_lose_only_their_solutions(path, tmp_path):
    (written,) = [p for p in student.write_student_notebooks(path.parent, tmp_path) if p.name == path.name]
    original, stripped = nbformat.read(path, as_version=4), nbformat.read(written, as_version=4)
    nbformat.validate(stripped)
    # Every code cell stays but those of the solutions, between {solution-start} and {solution-end}.
    kept, inside = [], False
    for cell in original.cells:
        if cell.cell_type == "markdown" and "{solution-" in cell.source:  # the cell's last marker decides
            inside = cell.source.rfind("{solution-start}") > cell.source.rfind("{solution-end}")
        elif cell.cell_type == "code" and not inside:
            kept.append(cell.source)
    assert [c.source for c in stripped.cells if c.cell_type == "code"] == kept
    before = "\n".join(c.source for c in original.cells if c.cell_type == "markdown")
    after = "\n".join(c.source for c in stripped.cells if c.cell_type == "markdown")
    assert "{solution" in before and "{solution" not in after
    assert after.count("{exercise}") == before.count("{exercise}") > 0
    # Nothing but solutions went: the remaining lines are the original's, in order.
    remaining = iter(before.split("\n"))
    assert all(line in remaining for line in after.split("\n"))
