"""A Sphinx extension: ``{build-environment}``, a table of what built the book.

The execution status page (``book/status.md``) puts it under myst-nb's execution table: the machine
(platform, processor, CPU cores), Python, and the version of each package the chapters run on, all
read when the page is built, so the run times above are read next to what produced them.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

# The distributions whose versions the page shows, as pip names them.
PACKAGES = (
    "gaebook",
    "torch",
    "numpy",
    "gymnasium",
    "stable-baselines3",
    "transformers",
    "trl",
    "verl",
    "jupyter-book",
    "myst-nb",
)
NOT_INSTALLED = "not installed"


def environment() -> list[tuple[str, str]]:
    """``(what, value)`` rows: the machine, Python, then each of :data:`PACKAGES` with its version."""
    rows = [
        ("Platform", platform.platform()),
        ("Processor", platform.machine()),
        ("CPU cores", str(os.cpu_count())),
        ("Python", platform.python_version()),
    ]
    for name in PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, NOT_INSTALLED))
    return rows


def table(rows: list[tuple[str, str]], header: tuple[str, str]) -> nodes.table:
    """A two-column docutils table of ``rows`` under ``header``, for every builder (HTML and LaTeX)."""

    def row(cells: tuple[str, str], literal: bool) -> nodes.row:
        first, second = cells
        value = nodes.literal(text=second) if literal else nodes.Text(second)
        return nodes.row(
            "", nodes.entry("", nodes.paragraph(text=first)), nodes.entry("", nodes.paragraph("", "", value))
        )

    group = nodes.tgroup(cols=2)
    group += [nodes.colspec(colwidth=30), nodes.colspec(colwidth=70)]
    group += nodes.thead("", row(header, literal=False))
    group += nodes.tbody("", *(row(cells, literal=True) for cells in rows))
    result = nodes.table("", group)
    result["classes"] += ["colwidths-auto", "build-environment"]
    return result


class BuildEnvironment(SphinxDirective):
    """``{build-environment}``: the table of :func:`environment`, as the build sees it."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        # The page is read again on every build, so its table never shows an older build's versions.
        self.env.note_reread()
        return [table(environment(), ("Component", "Version"))]


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("build-environment", BuildEnvironment)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
