"""A Sphinx extension: the whole book's PDF in every page's download menu.

``make pdf`` builds the book through LaTeX into ``_build/latex/gae-book.pdf`` (the ``book_pdf``
setting) and copies it to the site's root as ``gae-book.pdf``; an HTML build that finds it there
copies it too, so either build may come first. Every page's download menu (sphinx-book-theme's)
links that file next to the page's own notebook. The student site sets ``book_pdf`` to ``""``: the
PDF shows the solutions, so its menus leave it out.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

SITE_NAME = "gae-book.pdf"
MENU = "download-buttons"  # the label of sphinx-book-theme's download group


def add_to_menu(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: object) -> None:
    if not app.config.book_pdf:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == MENU:
            group["buttons"].append(
                {
                    "type": "link",
                    "url": context["pathto"](SITE_NAME, 1),
                    "text": "book .pdf",
                    "tooltip": "Download the whole book as a PDF",
                    "icon": "fas fa-book",
                    "label": "download-book-pdf-button",
                }
            )


def copy_pdf(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html" or not app.config.book_pdf:
        return
    pdf = Path(app.confdir, app.config.book_pdf)
    if pdf.is_file():
        shutil.copyfile(pdf, Path(app.outdir, SITE_NAME))


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("book_pdf", "_build/latex/gae-book.pdf", "html", types=[str])
    # After sphinx-book-theme has made its header buttons (priority 501).
    app.connect("html-page-context", add_to_menu, priority=502)
    app.connect("build-finished", copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
