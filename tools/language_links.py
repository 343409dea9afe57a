"""A Sphinx extension: every page links to the same page in the book's other editions.

``book_editions`` maps each edition's language to the name a reader knows it by, for instance
``{"en": "English", "zh_CN": "中文"}``. The English edition is the site's root (``_build/html``); every
other edition is built into a folder named for its language under it (``_build/html/zh_CN``, by
``tools/i18n.py site``), with the same page names, so a page's counterpart is found by its name alone.
Each page gets, above its text, a short list of links to its counterparts (each marked with its
language, for screen readers and search engines), and ``<link rel="alternate" hreflang>`` tags.
With fewer than two editions the extension does nothing.
"""

from __future__ import annotations

import html
from typing import Any

from sphinx.application import Sphinx

ROOT_EDITION = "en"
# The label of the list of links, in the language of the page that shows it.
LABELS = {"en": "This page in other languages", "zh_CN": "本页的其他语言版本"}


def _hreflang(language: str) -> str:
    return language.replace("_", "-")


def counterparts(pagename: str, here: str, editions: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(language, name, relative URL)`` of ``pagename`` in every edition other than ``here``."""
    if here not in editions:
        raise ValueError(f"the page's language {here!r} is not one of book_editions {sorted(editions)}")
    to_root = "../" * pagename.count("/") + ("" if here == ROOT_EDITION else "../")
    return [
        (language, name, f"{to_root}{'' if language == ROOT_EDITION else language + '/'}{pagename}.html")
        for language, name in editions.items()
        if language != here
    ]


def add_links(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: object) -> None:
    editions: dict[str, str] = app.config.book_editions
    if len(editions) < 2 or doctree is None or "body" not in context:
        return
    here = app.config.language or ROOT_EDITION
    links = counterparts(pagename, here, editions)
    items = "".join(
        f'<li><a href="{html.escape(url)}" hreflang="{tag}" lang="{tag}">{html.escape(name)}</a></li>'
        for lang, name, url in links
        for tag in [_hreflang(lang)]
    )
    label = html.escape(LABELS.get(here, LABELS[ROOT_EDITION]))
    context["body"] = f'<nav class="book-editions" aria-label="{label}"><ul>{items}</ul></nav>\n' + context["body"]
    context["metatags"] = context.get("metatags", "") + "".join(
        f'\n<link rel="alternate" hreflang="{_hreflang(lang)}" href="{html.escape(url)}" />' for lang, _, url in links
    )


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("book_editions", {}, "html", types=[dict])
    app.connect("html-page-context", add_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
