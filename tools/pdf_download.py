"""A Sphinx extension: the whole book's PDF in every page's download menu.

``make pdf`` builds the book through LaTeX into ``_build/latex/gae-book.pdf``. When that file exists
at the time of an HTML build, this extension copies it to the site's root as ``gae-book.pdf`` and adds
a link to it to sphinx-book-theme's download menu, next to the page's own ``.ipynb`` and source;
without it (a build before any ``make pdf``, or the student site, which sets ``book_pdf`` to ``""``
because the PDF shows the solutions) the menu is the theme's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

SITE_NAME = "gae-book.pdf"
MENU = "download-buttons"  # the label of sphinx-book-theme's download group


def _pdf(app: Sphinx) -> Path | None:
    configured = app.config.book_pdf
    if not configured:
        return None
    path = Path(app.confdir, configured)
    return path if path.is_file() else None


def add_to_menu(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: object) -> None:
    if _pdf(app) is None:
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
    pdf = _pdf(app)
    if exception is None and app.builder.format == "html" and pdf is not None:
        shutil.copyfile(pdf, Path(app.outdir, SITE_NAME))


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("book_pdf", "_build/latex/gae-book.pdf", "html", types=[str])
    # After sphinx-book-theme has made its header buttons (priority 501).
    app.connect("html-page-context", add_to_menu, priority=502)
    app.connect("build-finished", copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
