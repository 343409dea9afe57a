"""Sphinx extension: two pieces of HTML that the book's dependencies write inaccessibly, rewritten.

- MyST-NB's toggle of a hidden code cell is a ``<summary>`` whose ``aria-label`` ("Toggle hidden
  content") differs from the text it shows ("Show code cell content"), so a reader who speaks the
  visible text to a voice-control tool cannot reach it (WCAG 2.5.3, Label in Name). Here the visible
  text is its name.
- Docutils writes each bibliography entry with the deprecated role ``doc-biblioentry`` inside a
  ``role="list"``, which must contain list items (ARIA 1.2). Here each entry is a list item.

``_config.yml`` loads it (``sphinx.local_extensions``).
"""

from __future__ import annotations

from html import escape
from typing import Any

from docutils import nodes
from myst_nb.sphinx_ import HideCodeCellNode
from sphinx.application import Sphinx
from sphinx.writers.html5 import HTML5Translator


def visit_hidden_cell(self: HTML5Translator, node: HideCodeCellNode) -> None:
    classes = " ".join(node["classes"])
    self.body.append(f'<details class="admonition hide {classes}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}</p>\n')
    self.body.append("</summary>\n")


def depart_hidden_cell(self: HTML5Translator, node: HideCodeCellNode) -> None:
    self.body.append("</details>\n")


def visit_citation(self: HTML5Translator, node: nodes.citation) -> None:
    if not isinstance(node.previous_sibling(), nodes.citation):
        self.body.append('<div role="list" class="citation-list">\n')
    self.body.append(self.starttag(node, "div", classes=[node.tagname], role="listitem"))


def depart_citation(self: HTML5Translator, node: nodes.citation) -> None:
    self.body.append("</div>\n")
    if not isinstance(node.next_node(descend=False, siblings=True), nodes.citation):
        self.body.append("</div>\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("myst_nb")
    app.add_node(HideCodeCellNode, override=True, html=(visit_hidden_cell, depart_hidden_cell))
    app.add_node(nodes.citation, override=True, html=(visit_citation, depart_citation))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
