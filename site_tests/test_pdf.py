"""The book's PDF (``make pdf``), read back with poppler: every page of the table of contents, the
numbers the chapters glue into their text, the figures, the bibliography, and a page that renders.

The glued numbers are read from the executed notebooks the PDF was built from (the jupyter-cache of
``make notebooks`` or ``make book``), formatted as myst-nb formats them in the text.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import matplotlib.image
import nbformat
import pytest
import yaml
from jupyter_cache import get_cache
from myst_nb.core.variables import format_plain_text

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [entry["file"] for part in TOC["parts"] for entry in part["chapters"]]
NOTEBOOK_PAGES = [entry for entry in PAGES if (ROOT / f"{entry}.ipynb").exists()]
PDF = ROOT / "_build" / "latex" / f"{Path(CONFIG['latex']['latex_documents']['targetname']).stem}.pdf"
JUPYTER_CACHE = ROOT / "_build" / ".jupyter_cache"
GLUE_TEXT = re.compile(r"\{glue:text\}`(?P<key>[^`:]+)(?::(?P<fmt>[^`]*))?`")
SAMPLE_PER_CHAPTER = 6


@pytest.fixture(scope="module", autouse=True)
def _not_for_the_student_site(student: bool) -> None:
    if student:
        pytest.skip("the student site has no PDF: the book's PDF shows the solutions")


@cache
def pdf_lines() -> list[str]:
    """The PDF's text, line by line, as pdftotext reads it."""
    if not PDF.is_file():
        pytest.fail(f"no PDF at {PDF}: run `make pdf`")
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(PDF), "-"], capture_output=True, text=True, check=True)
    return text.stdout.splitlines()


@cache
def pdf_text() -> str:
    """The PDF's text, with every run of whitespace (line and page breaks included) one space."""
    return " ".join(" ".join(pdf_lines()).split())


def letters(text: str) -> str:
    """``text`` in lower case without spaces, hyphens or punctuation."""
    return re.sub(r"[\W_]", "", text.lower())


def title(entry: str) -> str:
    """The page's first heading, as its source writes it."""
    path = ROOT / f"{entry}.ipynb"
    if path.exists():
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        source = (ROOT / f"{entry}.md").read_text(encoding="utf-8")
    return re.search(r"^# (.+)$", source, re.MULTILINE)[1].strip()


def executed(entry: str) -> nbformat.NotebookNode:
    """The executed notebook the build rendered: the cache's record for the notebook's current code."""
    notebook = nbformat.read(ROOT / f"{entry}.ipynb", as_version=4)
    jupyter_cache = get_cache(JUPYTER_CACHE)
    try:
        record = jupyter_cache.match_cache_notebook(notebook)
    except KeyError:
        pytest.fail(f"{entry} is not in {JUPYTER_CACHE}: run `make notebooks` (or `make book`) before `make pdf`")
    return jupyter_cache.get_cache_bundle(record.pk).nb


def glued_numbers(entry: str) -> list[tuple[str, str]]:
    """``(key, text)`` for every ``{glue:text}`` number in the page's prose, as myst-nb formats it."""
    values = {
        output.metadata["scrapbook"]["name"]: output.data[output.metadata["scrapbook"]["mime_prefix"] + "text/plain"]
        for cell in executed(entry).cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "scrapbook" in output.get("metadata", {})
    }
    markdown = "\n".join(
        c.source for c in nbformat.read(ROOT / f"{entry}.ipynb", as_version=4).cells if c.cell_type == "markdown"
    )
    numbers = {}
    for match in GLUE_TEXT.finditer(markdown):
        text = format_plain_text(values[match["key"]], match["fmt"] if match["fmt"] is not None else "s")
        # Numbers only: a glued word may be split by hyphenation; a lone digit proves nothing.
        if re.fullmatch(r"[-+−]?[\d.,]*\d[\d.,]*%?", text) and len(text.strip("-+−")) >= 3:
            numbers[match["key"], match["fmt"]] = text
    return [(key, text) for (key, _), text in numbers.items()]


@pytest.mark.parametrize("entry", PAGES)
def test_every_page_is_in_the_pdf(entry):
    """The page's title stands on lines of its own: its entry in the contents, its heading and the
    running heads of its pages (a sentence that mentions it does not count)."""
    # Without spaces: xeCJK puts a space between Latin and Chinese text that the source does not have.
    lines = ["".join(line.split()) for line in pdf_lines()]
    assert lines.count("".join(title(entry).split())) >= 2


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_a_sample_of_glued_numbers_is_in_the_pdf(entry):
    numbers = glued_numbers(entry)
    if not numbers:
        pytest.skip(f"{entry} glues no number into its prose")
    # Spread over the chapter, from its first glued number to its last.
    step = max(1, len(numbers) // SAMPLE_PER_CHAPTER)
    sample = numbers[::step][:SAMPLE_PER_CHAPTER] + numbers[-1:]
    text = pdf_text()
    missing = [(key, value) for key, value in sample if value not in text]
    assert not missing, f"glued numbers not in the PDF: {missing}"


def test_every_figure_is_in_the_pdf():
    figures = sum(
        "image/png" in output.get("data", {})
        for entry in NOTEBOOK_PAGES
        for cell in executed(entry).cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    listed = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True, check=True)
    images = [line for line in listed.stdout.splitlines()[2:] if line.split()[2] == "image"]
    assert figures > 0
    assert len(images) >= figures, f"{len(images)} images in the PDF, {figures} figures in the notebooks"


def test_the_bibliography_and_every_reference_resolve():
    text = pdf_text()
    assert "??" not in text, "an undefined reference or citation"
    cited = set()
    for entry in PAGES:
        path = ROOT / f"{entry}.ipynb"
        source = path.read_text(encoding="utf-8") if path.exists() else (ROOT / f"{entry}.md").read_text()
        cited |= {key.strip() for keys in re.findall(r"\{cite[a-z:]*\}`([^`]+)`", source) for key in keys.split(",")}
    assert cited
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    for key in sorted(cited):
        entry = re.search(rf"@\w+\{{{re.escape(key)},(.*?)\n\}}", bib, re.DOTALL)
        assert entry, f"{key} is cited but not in references.bib"
        bib_title = re.search(r"\btitle\s*=\s*[{\"](.+?)[}\"],?\s*\n", entry[1])[1]
        # The bibliography style sets titles in sentence case, and a line break may hyphenate a word.
        words = " ".join(re.sub(r"[{}\\]", "", bib_title).split()[:3])
        assert letters(words) in letters(text), f"the bibliography lacks {key} ({words}…)"


def test_a_page_renders(tmp_path):
    pages = int(
        re.search(
            r"^Pages:\s+(\d+)",
            subprocess.run(["pdfinfo", str(PDF)], capture_output=True, text=True, check=True).stdout,
            re.MULTILINE,
        )[1]
    )
    assert pages > 50
    # The fullest of five pages from the middle (a chapter's last page may hold a line or two): the one
    # with the most text, as pdftotext reads it, must also render with ink.
    middle = range(pages // 2, pages // 2 + 5)
    page = max(middle, key=lambda p: len(page_text(p)))
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "50",
            "-f",
            str(page),
            "-l",
            str(page),
            "-singlefile",
            str(PDF),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    pixels = matplotlib.image.imread(tmp_path / "page.png")[..., :3].mean(axis=-1)
    ink = (pixels < 0.9).mean()
    assert ink > 0.01, f"page {page} of {pages} is blank ({ink:.2%} dark pixels)"


def page_text(page: int) -> str:
    command = ["pdftotext", "-f", str(page), "-l", str(page), str(PDF), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def pdf_fonts() -> str:
    return subprocess.run(["pdffonts", str(PDF)], capture_output=True, text=True, check=True).stdout


def page_sources() -> dict[str, str]:
    """Each page's markdown: a notebook's markdown cells, or the page's own file."""
    sources = {}
    for entry in PAGES:
        path = ROOT / f"{entry}.ipynb"
        if path.exists():
            cells = nbformat.read(path, as_version=4).cells
            sources[entry] = "\n".join(c.source for c in cells if c.cell_type == "markdown")
        else:
            sources[entry] = (ROOT / f"{entry}.md").read_text(encoding="utf-8")
    return sources


def test_every_displayed_equation_is_typeset():
    """As many displayed equations in the LaTeX the PDF was made from as in the pages' sources, and
    the PDF sets them in TeX's maths fonts."""
    displayed = sum(
        len(re.findall(r"\$\$", text)) // 2 + len(re.findall(r"^\\begin\{(?:align|equation|gather)\*?\}", text, re.M))
        for text in page_sources().values()
    )
    tex = PDF.with_suffix(".tex").read_text(encoding="utf-8")
    in_tex = len(re.findall(r"\\begin\{(?:equation|align|gather)\*?\}", tex))
    assert displayed > 0
    assert in_tex >= displayed, f"{in_tex} displayed equations in the LaTeX, {displayed} in the sources"
    fonts = pdf_fonts()
    assert "CMMI" in fonts and "CMEX" in fonts, "no maths font in the PDF"


def test_the_chinese_is_in_the_pdf_in_a_cjk_font():
    chinese = sorted({run for text in page_sources().values() for run in re.findall(r"[\u4e00-\u9fff]{2,}", text)})
    assert chinese
    text = "".join(pdf_text().split())
    missing = [run for run in chinese if run not in text]
    assert not missing, f"Chinese not in the PDF: {missing[:10]}"
    assert "WenQuanYi" in pdf_fonts()
