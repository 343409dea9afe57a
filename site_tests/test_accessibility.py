"""Every page of the built site checked by axe-core 4 (WCAG 2.1 AA and axe's best practices).

axe-core comes from npm, pinned in ``package.json`` and ``package-lock.json``: ``make axe-deps``
(``npm ci``) installs it into ``node_modules``. A page fails on any serious or critical violation;
every violation of every impact is written to ``axe/<page>.json`` next to the screenshots.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_site import PAGES, html_path

ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")
FILE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.IGNORECASE)
# The table of contents' pages and the two that Sphinx adds (the search page with results shown).
AXE_PAGES = [html_path(entry) for entry in PAGES] + ["genindex.html", "search.html?q=lambda"]


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make axe-deps` installs axe-core from package-lock.json")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def axe_reports(reports: Path) -> Path:
    path = reports / "axe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe(violation: dict) -> str:
    targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
    shown = "; ".join(targets[:5]) + (f"; … {len(targets) - 5} more" if len(targets) > 5 else "")
    return f"{violation['impact']} {violation['id']} ({violation['help']}) at {len(targets)} element(s): {shown}"


@pytest.mark.parametrize("path", AXE_PAGES)
def test_axe_finds_no_serious_violation(path, open_page, axe_source, axe_reports):
    page = open_page(path).page
    if path.startswith("search.html"):
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    page.add_script_tag(content=axe_source)
    results = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ["violations"]});
            return {version: axe.version, violations: results.violations};
        }"""
    )
    assert results["version"].startswith("4."), results["version"]
    violations = results["violations"]
    name = path.split("?")[0].replace("/", "_").removesuffix(".html")
    report = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "targets": [n["target"] for n in v["nodes"]]}
        for v in violations
    ]
    (axe_reports / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    failing = [describe(v) for v in violations if v["impact"] in FAILING_IMPACTS]
    assert not failing, f"axe-core {results['version']} on {path}:\n" + "\n".join(failing)


@pytest.mark.parametrize("entry", PAGES)
def test_every_image_has_alt_text(entry, open_page):
    """Docutils describes an image without alt text by its path, which axe-core accepts: reject that too."""
    page = open_page(html_path(entry)).page
    images = page.evaluate("() => [...document.images].map(img => [img.getAttribute('src'), img.getAttribute('alt')])")
    missing = [src for src, alt in images if not (alt or "").strip() or alt.strip() == src or FILE_NAME.search(alt)]
    assert not missing, f"images without alt text that says what they show: {missing}"
