"""tools/language_links.py: each page's links to its counterparts in the other editions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("language_links", ROOT / "tools" / "language_links.py")
assert spec is not None and spec.loader is not None
links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(links)

EDITIONS = {"en": "English", "zh_CN": "中文"}


def test_counterparts_are_found_by_page_name_from_either_edition():
    assert links.counterparts("book/01_background", "en", EDITIONS) == [
        ("zh_CN", "中文", "../zh_CN/book/01_background.html")
    ]
    assert links.counterparts("book/01_background", "zh_CN", EDITIONS) == [
        ("en", "English", "../../book/01_background.html")
    ]
    assert links.counterparts("intro", "zh_CN", EDITIONS) == [("en", "English", "../intro.html")]
    with pytest.raises(ValueError, match="not one of book_editions"):
        links.counterparts("intro", "fr", EDITIONS)


def page(language: str | None, editions: dict[str, str]) -> dict[str, str]:
    app = SimpleNamespace(config=SimpleNamespace(book_editions=editions, language=language))
    context = {"body": "<p>text</p>", "metatags": ""}
    links.add_links(app, "book/02_core_concepts", "page.html", context, doctree=object())
    return context


def test_every_page_gets_a_labelled_list_of_links_and_alternate_tags():
    context = page("zh_CN", EDITIONS)
    assert context["body"].startswith('<nav class="book-editions" aria-label="本页的其他语言版本">')
    assert '<a href="../../book/02_core_concepts.html" hreflang="en" lang="en">English</a>' in context["body"]
    assert context["body"].endswith("<p>text</p>")
    assert '<link rel="alternate" hreflang="en" href="../../book/02_core_concepts.html" />' in context["metatags"]
    english = page(None, EDITIONS)
    assert 'hreflang="zh-CN" lang="zh-CN">中文</a>' in english["body"]


def test_one_edition_alone_adds_nothing():
    assert page(None, {"en": "English"}) == {"body": "<p>text</p>", "metatags": ""}
