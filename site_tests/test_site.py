"""Every page of the table of contents, as a reader's browser shows it.

Run after a build: ``make browser`` (``_build/html``), or ``--site _build/student/html --student``
for the student edition, whose pages must show the exercises but no solutions.
"""

from __future__ import annotations

import html
import os
import platform
import re
from functools import cache
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
# Every page of the table of contents, as its source path without suffix (book/04_mathematics).
PAGES = [TOC["root"]] + [entry["file"] for part in TOC["parts"] for entry in part["chapters"]]
NOTEBOOK_PAGES = [entry for entry in PAGES if (ROOT / f"{entry}.ipynb").exists()]

# What is left of TeX that MathJax did not typeset, in the text a reader sees (code excluded).
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
# tqdm's progress bars are the one thing a chapter may print to stderr (see the common notebook style).
PROGRESS_BAR = re.compile(r"^[^|]*\d+%\|[^|]*\|\s*\d+/\d+ \[[^\]]*\]$")
# Every page includes sphinx-thebe's inline configuration twice (as it does togglebutton's); the
# second copy redeclares a constant and throws. Thebe is not enabled in this book, so nothing uses it.
KNOWN_THEME_ERROR = "Identifier 'THEBE_JS_URL' has already been declared"
# What a page needs for its content but not for its navigation: MathJax and the images.
HEAVY_RESOURCE = re.compile(r"mathjax|\.(png|jpe?g|gif|svg|webp)(\?|$)", re.IGNORECASE)


def html_path(entry: str) -> str:
    return f"{entry}.html"


@cache
def ids_in(file: Path) -> frozenset[str]:
    return frozenset(html.unescape(i) for i in re.findall(r'\bid="([^"]*)"', file.read_text(encoding="utf-8")))


def directives(entry: str, kind: str) -> int:
    """How many ``{kind}`` directives the page's notebook source holds."""
    nb = nbformat.read(ROOT / f"{entry}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return len(re.findall(rf"^ {{0,3}}(?:`{{3,}}|:{{3,}})\{{{kind}\}}", text, re.MULTILINE))


@pytest.mark.parametrize("entry", PAGES)
def test_screenshot(entry, open_page, screenshots):
    loaded = open_page(html_path(entry))
    # JPEG: a page is tens of thousands of pixels tall, and Chromium encodes it in half PNG's time.
    target = screenshots / f"{Path(entry).name}.jpg"
    loaded.page.screenshot(path=target, full_page=True, type="jpeg", quality=85)
    assert target.stat().st_size > 10_000


@pytest.mark.parametrize("entry", PAGES)
def test_math_is_typeset(entry, open_page):
    page = open_page(html_path(entry)).page
    math = page.evaluate(
        """() => ({
            total: document.querySelectorAll(".math").length,
            typeset: document.querySelectorAll(".math mjx-container").length,
            errors: [...document.querySelectorAll("mjx-merror")]
                .map(e => e.getAttribute("data-mjx-error") || e.textContent),
        })"""
    )
    missing = math["total"] - math["typeset"]
    assert missing == 0, f"{missing} of {math['total']} formulas not typeset"
    assert not math["errors"], f"TeX errors: {math['errors']}"
    visible_text = page.evaluate(
        """() => {
            const body = document.body.cloneNode(true);
            body.querySelectorAll("pre, code, script, style, mjx-container, .highlight").forEach(e => e.remove());
            return body.textContent;
        }"""
    )
    leftovers = sorted({m.group(0)[:60] for m in RAW_TEX.finditer(visible_text)})
    assert not leftovers, f"raw TeX in the page: {leftovers}"


@pytest.mark.parametrize("entry", PAGES)
def test_every_image_loads(entry, open_page):
    page = open_page(html_path(entry)).page
    broken = page.evaluate(
        "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"


@pytest.mark.parametrize("entry", PAGES)
def test_no_error_output(entry, open_page):
    page = open_page(html_path(entry)).page
    outputs = page.evaluate(
        r"""() => [...document.querySelectorAll(".cell_output .output")]
            .filter(o => o.classList.contains("stderr") ||
                    (o.classList.contains("traceback") && !o.closest(".tag_raises-exception")))
            .map(o => ({kind: o.classList.contains("stderr") ? "stderr" : "traceback", text: o.innerText}))"""
    )
    tracebacks = [o["text"][-500:] for o in outputs if o["kind"] == "traceback"]
    assert not tracebacks, f"a cell failed (only cells tagged raises-exception may): {tracebacks}"
    stderr = [line for o in outputs if o["kind"] == "stderr" for line in o["text"].splitlines() if line.strip()]
    unexpected = [line for line in stderr if not PROGRESS_BAR.match(line.strip())]
    assert not unexpected, f"stderr output that is not a progress bar: {unexpected[:10]}"


@pytest.mark.parametrize("entry", PAGES)
def test_no_script_error_and_nothing_from_the_network(entry, open_page):
    loaded = open_page(html_path(entry))
    assert [e for e in loaded.errors if KNOWN_THEME_ERROR not in e] == []
    assert loaded.blocked == [], "the page needs more than MathJax from the network"


@pytest.mark.parametrize("entry", PAGES)
def test_every_internal_link_resolves(entry, open_page, base_url, site, edition):
    page = open_page(html_path(entry)).page
    hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    broken = []
    served = site if edition == "en" else site.parent  # a translation is served from the English site's root
    for href in {h for h in hrefs if h.startswith(base_url)}:
        parts = urlsplit(href)
        path = unquote(parts.path).lstrip("/")
        target = served / path / "index.html" if not path or path.endswith("/") else served / path
        if not target.is_file() or (
            parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_in(target)
        ):
            broken.append(href)
    assert not broken, f"links to nothing: {sorted(broken)}"


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_launch_buttons_open_this_notebook_in_colab_and_binder(entry, open_page):
    page = open_page(html_path(entry)).page
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    expected = {
        "Colab": f"{CONFIG['launch_buttons']['colab_url']}/github/{repo}/blob/{branch}/{entry}.ipynb",
        "Binder": f"{CONFIG['launch_buttons']['binderhub_url']}/v2/gh/{repo}/{branch}?urlpath=tree/{entry}.ipynb",
    }
    page.click(".dropdown-launch-buttons button.dropdown-toggle")
    for service, url in expected.items():
        link = page.locator(".dropdown-launch-buttons a", has_text=service)
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", url)
    page.keyboard.press("Escape")


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_exercises_and_their_solutions_are_on_the_page(entry, open_page, student, site):
    page = open_page(html_path(entry)).page
    exercises = page.locator(".exercise.admonition")
    solutions = page.locator(".solution.admonition")
    assert exercises.count() == directives(entry, "exercise") > 0
    if student:
        assert solutions.count() == 0, "the student site shows solutions"
        download = (site / "_sources" / f"{entry}.ipynb").read_text(encoding="utf-8")
        assert "{exercise}" in download and "{solution" not in download, "the download button gives the solutions"
        return
    assert solutions.count() == directives(entry, "solution") + directives(entry, "solution-start")
    first = solutions.first
    body = first.locator(":scope > :not(.admonition-title)").first
    assert not body.is_visible(), "solutions must be hidden until the reader opens them"
    first.locator(".admonition-title").click()
    expect(body).to_be_visible()


def pages_with(word: str, edition: str) -> list[str]:
    """The pages whose prose in ``edition`` has ``word``: the English sources, or the translation's catalogs."""
    if edition == "en":
        return [e for e in PAGES if word in next(ROOT.glob(f"{e}.*")).read_text(encoding="utf-8")]
    catalogs = ROOT / "locales" / edition / "LC_MESSAGES"
    return [e for e in PAGES if word in (catalogs / f"{Path(e).name}.po").read_text(encoding="utf-8")]


def test_search_finds_a_key_term(open_page, edition):
    # Chinese text has no spaces: the search finds the glossary's term as a word (tools/i18n.py).
    word = {"en": "lambda", "zh_CN": "优势函数"}[edition]
    expected = pages_with(word, edition)
    assert expected, f"no page says {word}"
    page = open_page(f"search.html?q={word}").page
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    found = page.evaluate("() => [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href)")
    assert {e for e in expected if any(f"/{e}.html" in href for href in found)}, (word, found)


@pytest.mark.parametrize("entry", PAGES)
def test_every_page_links_to_its_counterpart_in_the_other_edition(entry, open_page, base_url, site, student, edition):
    links = open_page(html_path(entry)).page.locator("nav.book-editions a")
    if student:
        expect(links).to_have_count(0)  # the translations are of the book, solutions included
        return
    others = {e: n for e, n in CONFIG["sphinx"]["config"]["book_editions"].items() if e != edition}
    hrefs = dict(links.evaluate_all("links => links.map(a => [a.getAttribute('hreflang'), a.href])"))
    assert sorted(hrefs) == sorted(language.replace("_", "-") for language in others)
    english_root = site if edition == "en" else site.parent
    for language, href in hrefs.items():
        folder = english_root if language == "en" else english_root / language.replace("-", "_")
        assert href.endswith(f"/{html_path(entry)}") and (folder / html_path(entry)).is_file(), href


def glued(page: Path) -> set[str]:
    """The values that ``glue`` put into a built page's prose."""
    return {html.unescape(v) for v in re.findall(r'<span class="pasted-text">([^<]*)</span>', page.read_text("utf-8"))}


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_a_translation_shows_the_english_editions_glued_numbers(entry, site, edition):
    if edition == "en":
        pytest.skip("the English edition is the source")
    english, translated = glued(site.parent / html_path(entry)), glued(site / html_path(entry))
    assert english, f"no glued value on the English {entry}"
    assert translated == english, (
        f"only in English: {sorted(english - translated)[:5]}; only here: {sorted(translated - english)[:5]}"
    )


# Prose in English: three words of Latin letters in a row, in a block with no Chinese character.
ENGLISH_WORDS = re.compile(r"[A-Za-z]{2,}(?:[ \-][A-Za-z]{2,}){2,}")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.mark.parametrize("entry", PAGES)
def test_no_paragraph_is_left_untranslated(entry, open_page, edition):
    if edition == "en":
        pytest.skip("the English edition is the source")
    blocks = open_page(html_path(entry)).page.evaluate(
        r"""() => [...document.querySelectorAll(
                "article p, article li, article td, article th, article dt, article dd, article h1, article h2,"
                + " article h3, article figcaption, article .admonition-title")]
            .filter(e => !e.closest(".cell_output, .highlight, pre, .citation, #references, .build-environment"))
            // A table row with Chinese in it is bilingual on purpose (the glossary's English column).
            .filter(e => !(e.closest("tr") && /[\u4e00-\u9fff]/.test(e.closest("tr").textContent)))
            .map(e => {
                const copy = e.cloneNode(true);
                // Code, math, names of external pages and citations ("Schulman et al. [2016]") stay as they are.
                copy.querySelectorAll("code, .math, mjx-container, a.reference.external, a[href*='references.html#'],"
                    + " .headerlink, p, ul, ol")
                    .forEach(c => c.remove());
                return copy.textContent.replace(/\s+/g, " ").trim();
            })"""
    )
    english = [b for b in blocks if ENGLISH_WORDS.search(b) and not CJK.search(b)]
    assert not english, f"{len(english)} blocks in English: {english[:5]}"


def test_the_landing_page_leads_to_every_page(new_page, base_url):
    page = new_page().page
    # Each page's own content (math, images) is tested on its own: here the document is enough, so
    # neither this tab nor the tabs its links open load MathJax or the figures, and those tabs, like
    # every other, reach nothing off the machine.
    page.route(HEAVY_RESOURCE, lambda route: route.abort())

    def heavy_or_off_machine(url: str) -> bool:
        return not url.startswith(base_url) or bool(HEAVY_RESOURCE.search(url))

    page.context.route(heavy_or_off_machine, lambda route: route.abort())
    try:
        page.goto(base_url)
        page.wait_for_url(f"{base_url}{html_path(PAGES[0])}")
        nav = page.locator("nav.bd-docs-nav a")
        linked = nav.evaluate_all("links => links.map(a => a.href)")
        missing = [entry for entry in PAGES[1:] if f"{base_url}{html_path(entry)}" not in linked]
        assert not missing, f"the navigation has no link to {missing}"
        for entry in PAGES[1:]:
            # Each link opens in a tab of its own (Ctrl+click): the landing page stays as it is, where
            # going back to it would load it again for every link.
            with page.context.expect_page() as opened:
                nav.nth(linked.index(f"{base_url}{html_path(entry)}")).click(modifiers=["Control"])
            target = opened.value
            target.wait_for_url(f"{base_url}{html_path(entry)}", wait_until="domcontentloaded")
            expect(target.get_by_role("heading", level=1)).to_be_visible()
            target.close()
    finally:
        page.context.unroute(heavy_or_off_machine)


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_the_download_menu_offers_the_notebook_and_the_book_pdf(entry, open_page, base_url, site, student, edition):
    page = open_page(html_path(entry)).page
    page.click(".dropdown-download-buttons button.dropdown-toggle")
    notebook = page.locator(".dropdown-download-buttons a", has_text=".ipynb")
    expect(notebook).to_be_visible()
    expect(notebook).to_have_attribute("href", f"../_sources/{entry}.ipynb")
    assert nbformat.reads((site / "_sources" / f"{entry}.ipynb").read_text(encoding="utf-8"), as_version=4).cells
    book = page.locator(".dropdown-download-buttons a", has_text="book .pdf")
    if student or edition != "en":
        # The book's PDF shows the solutions, and it is the English edition's.
        expect(book).to_have_count(0)
    else:
        expect(book).to_be_visible()
        href = book.evaluate("a => a.href")
        assert href == f"{base_url}gae-book.pdf"
        assert (site / "gae-book.pdf").read_bytes()[:5] == b"%PDF-", "the menu's PDF is not a PDF: run `make pdf`"
    page.keyboard.press("Escape")


def test_the_status_page_lists_every_notebook_with_its_status_and_the_build_environment(open_page):
    page = open_page(html_path("book/status")).page
    rows = (
        page.locator("table")
        .first.locator("tbody tr")
        .evaluate_all("rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText.trim()))")
    )
    by_notebook = {row[0]: row for row in rows}
    assert sorted(by_notebook) == sorted(NOTEBOOK_PAGES)
    for entry, (_, _, method, seconds, status) in by_notebook.items():
        assert status == "✅", f"{entry} did not execute: {status}"
        assert method in {"cache", "auto", "force", "inline"} and float(seconds) > 0, (entry, method, seconds)
    environment = dict(
        page.locator("table.build-environment tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText.trim()))"
        )
    )
    # The site was built by the Python that runs these tests.
    assert environment["Python"] == platform.python_version()
    assert environment["CPU cores"] == str(os.cpu_count())
    for name in ("torch", "numpy", "gymnasium", "transformers", "trl", "verl", "jupyter-book"):
        assert environment[name] == version(name), name
