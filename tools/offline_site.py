"""The built site as a zip to read offline: ``python tools/offline_site.py SITE OUT.zip``.

The pages load MathJax from a CDN, and nothing else from the network (the browser tests check it).
The archive carries MathJax 3 itself, the copy that the ``mathjax`` package of the test extra ships
(the one the browser tests serve), under ``_static/mathjax``, and every page loads it from there, so
the maths renders without a connection. The archive holds one folder, ``html``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
LOCAL = Path("_static") / "mathjax"


def bundled_mathjax() -> Path:
    """The MathJax 3 distribution of the ``mathjax`` package (``django-static-mathjax``)."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the mathjax package is not installed: install gaebook's test extra")
    return Path(spec.submodule_search_locations[0]) / "static" / "mathjax"


def offline_copy(site: Path, out: Path, mathjax: Path) -> int:
    """Copy ``site`` to ``out`` with ``mathjax``'s ``es5`` bundle in it and every page loading that
    copy instead of the CDN's; return how many pages were changed.

    Raises:
        FileNotFoundError: if ``site`` has no ``index.html`` or ``mathjax`` no ``es5`` bundle.
    """
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"site must be a built site with an index.html: {site}")
    if not (mathjax / "es5").is_dir():
        raise FileNotFoundError(f"mathjax must be a MathJax 3 distribution with an es5 folder: {mathjax}")
    shutil.copytree(site, out)
    shutil.copytree(mathjax / "es5", out / LOCAL / "es5")
    changed = 0
    for page in sorted(out.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if MATHJAX_CDN in text:
            local = Path("../" * len(page.relative_to(out).parent.parts)) / LOCAL
            page.write_text(text.replace(MATHJAX_CDN, f"{local.as_posix()}/"), encoding="utf-8")
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("out", type=Path, help="the zip to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        pages = offline_copy(args.site, Path(tmp) / "html", bundled_mathjax())
        shutil.make_archive(str(args.out.with_suffix("")), "zip", root_dir=tmp, base_dir="html")
    print(f"{args.out}: {pages} pages load MathJax from the archive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
