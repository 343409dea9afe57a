"""Every figure of the book has alt text that says what it shows.

A chapter's figures are the outputs of its code cells. MyST-NB gives the image of a cell the alt
text in the cell's metadata, ``{"mystnb": {"image": {"alt": "..."}}}``; without it the page's
``<img>`` is described by its file name. A code cell *makes a figure* when it calls a function of
``matplotlib.pyplot`` (imported under any name) that creates, draws or shows one, or any object's
``savefig``: those cells must have alt text, and only those.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# pyplot's functions that create a figure (or draw into the current one, creating it if needed) or show it.
FIGURE_FUNCTIONS = frozenset(
    {
        "figure", "subplots", "subplot", "subplot_mosaic", "show", "plot", "semilogx", "semilogy", "loglog",
        "bar", "barh", "hist", "scatter", "errorbar", "imshow", "matshow", "pcolormesh", "contour", "contourf",
        "fill_between", "step", "stem", "pie", "boxplot", "violinplot", "stackplot", "hexbin", "quiver",
    }
)  # fmt: skip
MIN_ALT_WORDS = 8


def parse(source: str) -> ast.Module:
    """A cell's code, with IPython's magics and shell escapes (``%…``, ``!…``) made ``pass`` at their indent."""
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    ]
    return ast.parse("\n".join(lines))


def pyplot_names(module: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "matplotlib.pyplot" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib":
            names |= {a.asname or a.name for a in node.names if a.name == "pyplot"}
    return names


def makes_figure(module: ast.Module, pyplot: set[str]) -> bool:
    for node in ast.walk(module):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr == "savefig":
            return True
        owner = node.func.value
        if node.func.attr in FIGURE_FUNCTIONS and isinstance(owner, ast.Name) and owner.id in pyplot:
            return True
    return False


def figure_cells(path: Path) -> list[tuple[int, dict, bool]]:
    """``(index, cell, makes a figure)`` for every code cell of the notebook."""
    cells = [(i, c) for i, c in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"])]
    code = [(i, c, parse("".join(c["source"]))) for i, c in cells if c["cell_type"] == "code"]
    pyplot = set().union(*(pyplot_names(module) for _, _, module in code))
    return [(i, c, makes_figure(module, pyplot)) for i, c, module in code]


def alt_text(cell: dict) -> str | None:
    return cell["metadata"].get("mystnb", {}).get("image", {}).get("alt")


def test_the_definition_finds_the_figures():
    cases = {
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()": True,
        "from matplotlib import pyplot\npyplot.plot([1, 2])": True,
        "import matplotlib.pyplot as plt\n%matplotlib inline\nplt.hist([1, 2])": True,
        'import sys\nif "google.colab" in sys.modules:\n    %pip install "gaebook[notebook]==0.1.0"': False,
        "fig.savefig('out.png')": True,
        "import matplotlib.pyplot as plt\ncmap = plt.get_cmap('viridis')": False,
        "x = [1, 2]\nx.sort()\nprint(x)": False,
        "plot([1, 2])": False,  # not pyplot's
    }
    for source, expected in cases.items():
        module = parse(source)
        assert makes_figure(module, pyplot_names(module)) is expected, source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_alt_text(path):
    missing, stray, short = [], [], []
    for index, cell, figure in figure_cells(path):
        alt = alt_text(cell)
        where = f"cell {index} ({cell.get('id')})"
        if figure and not (alt and alt.strip()):
            missing.append(where)
        elif not figure and alt is not None:
            stray.append(where)
        elif figure and len(alt.split()) < MIN_ALT_WORDS:
            short.append(f"{where}: {alt!r}")
    assert not missing, f"figures without alt text (metadata mystnb.image.alt): {missing}"
    assert not stray, f"alt text on cells that make no figure: {stray}"
    assert not short, f"alt text too short to say what the figure shows: {short}"


def test_the_book_has_figures():
    assert sum(figure for path in NOTEBOOKS for _, _, figure in figure_cells(path)) >= len(NOTEBOOKS)
