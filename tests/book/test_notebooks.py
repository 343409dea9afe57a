"""The book's notebooks: in the table of contents, stored without outputs, Colab-ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# The extras of gaebook that a page installs in Colab, where it runs more libraries' code than "book" brings.
EXTRAS = {"from_book_to_verl": "book,llm"}


def toc_files() -> list[str]:
    return [TOC["root"]] + [entry["file"] for part in TOC["parts"] for entry in part["chapters"]]


def install_cell(extras: str = "book") -> str:
    """The first code cell of every chapter, built from the repository URL in _config.yml."""
    url = CONFIG["repository"]["url"].removeprefix("https://")
    branch = CONFIG["repository"]["branch"]
    return f"""# In Colab, install the book's package; anywhere else the checkout's own gaebook is used.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "-q",
            "gaebook[{extras}] @ git+https://{url}@{branch}",
        ],
        check=True,
    )"""


def test_every_notebook_is_in_the_toc_and_every_entry_exists():
    listed = set(toc_files())
    assert {f"book/{p.stem}" for p in NOTEBOOKS} <= listed
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_colab_ready(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for cell in code:
        assert not cell.get("outputs") and cell.get("execution_count") is None, "stored outputs: clear them"
    assert "".join(code[0]["source"]) == install_cell(EXTRAS.get(path.stem, "book"))
    headings = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("# ")]
    assert len(headings) == 1, "one title (H1) per chapter"


def test_launch_buttons_point_at_the_repository():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"]
    assert CONFIG["repository"]["branch"] == "main"
