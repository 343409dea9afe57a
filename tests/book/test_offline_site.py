"""tools/offline_site.py: the offline archive's pages load MathJax from the archive itself."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("offline_site", ROOT / "tools" / "offline_site.py")
offline_site = sys.modules["offline_site"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_site)

PAGE = '<html><head><script defer="defer" src="{cdn}es5/tex-mml-chtml.js"></script></head><body>$x$</body></html>'


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "book").mkdir(parents=True)
    (site / "index.html").write_text(PAGE.format(cdn=offline_site.MATHJAX_CDN))
    (site / "book" / "chapter.html").write_text(PAGE.format(cdn=offline_site.MATHJAX_CDN))
    (site / "book" / "plain.html").write_text("<html><body>no maths</body></html>")
    return site


@pytest.fixture
def mathjax(tmp_path: Path) -> Path:
    mathjax = tmp_path / "mathjax"
    (mathjax / "es5").mkdir(parents=True)
    (mathjax / "es5" / "tex-mml-chtml.js").write_text("// MathJax")
    return mathjax


def test_every_page_loads_the_archives_own_mathjax(site, mathjax, tmp_path):
    out = tmp_path / "offline"
    assert offline_site.offline_copy(site, out, mathjax) == 2
    for page in ("index.html", "book/chapter.html"):
        text = (out / page).read_text()
        assert offline_site.MATHJAX_CDN not in text
        src = re.search(r'src="([^"]+)"', text)[1]
        assert ((out / page).parent / src).resolve().is_file(), f"{page} loads {src}, which is not in the archive"
    assert (out / "book" / "plain.html").read_text() == (site / "book" / "plain.html").read_text()


def test_a_folder_that_is_not_a_built_site_is_refused(mathjax, tmp_path):
    with pytest.raises(FileNotFoundError, match="site"):
        offline_site.offline_copy(tmp_path, tmp_path / "offline", mathjax)


def test_the_test_extra_ships_mathjax_3():
    assert (offline_site.bundled_mathjax() / "es5" / "tex-mml-chtml.js").is_file()
