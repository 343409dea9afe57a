"""The book's notebooks: in the table of contents, stored without outputs, Colab-ready."""

from __future__ import annotations

import json
import re
from importlib.metadata import requires
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import gaebook

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def toc_files() -> list[str]:
    return [TOC["root"]] + [entry["file"] for part in TOC["parts"] for entry in part["chapters"]]


# What a chapter's install cell may bring: the chapter's own needs (the notebook extra) and the extras of
# the libraries it runs beside gaebook's, in this order (tests/book/test_chapters.py checks that the chapter
# imports what each brings). Never the book extra: Jupyter Book and Sphinx have no place in Colab.
INSTALL_EXTRAS = ("notebook", "sb3", "hf", "trl", "verl")
# verl 0.9.1 declares Requires-Python <3.13 and transformers <5.11 and runs on Colab's Python 3.13 and
# transformers (make colab runs the page there): on 3.13 the verl extra leaves verl out, and a cell that
# installs that extra installs verl with this line, without its requirements, beside tensordict and pyvers,
# whose requirements would downgrade Colab's packaging; the extra brings the rest of what the three require.
VERL_LINE = '\n    %pip install --ignore-requires-python --no-deps "verl==0.9.1" "tensordict==0.10.0" "pyvers==0.1.0"'
NO_DEPS = ("verl", "tensordict", "pyvers")


def install_cell(extras: str, version: str) -> str:
    """The first code cell of every chapter."""
    verl = VERL_LINE if "verl" in extras.split(",") else ""
    return (
        "# In Colab, install the gaebook this book was built with, and the libraries this chapter runs; anywhere\n"
        "# else the checkout's own gaebook is used. If Colab then asks to restart the session, do so and run the\n"
        "# notebook again.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install "gaebook[{extras}]=={version}"'
        f"{verl}"
    )


INSTALL_CELL = re.compile(
    re.escape(install_cell("EXTRAS", "VERSION"))
    .replace("EXTRAS", r"(?P<extras>[\w,]+)")
    .replace("VERSION", r'(?P<version>[^"]+)')
    + f"(?P<verl>{re.escape(VERL_LINE)})?"
)


def install_extras(source: str) -> list[str]:
    """The extras the install cell ``source`` installs, after checking the cell is the book's install cell.

    It installs with IPython's ``%pip``, whose output Colab reads to offer a restart when the install
    changed a module the session had imported, and pins the gaebook version this checkout is: a
    notebook of an older edition gets the gaebook its text was executed with.
    """
    match = INSTALL_CELL.fullmatch(source)
    assert match, f"not the book's install cell:\n{source}"
    version = gaebook.__version__
    assert match["version"] == version, f"the cell installs gaebook {match['version']}, not this checkout's {version}"
    extras = match["extras"].split(",")
    assert extras[0] == "notebook" and extras == sorted(set(extras), key=INSTALL_EXTRAS.index), extras
    assert bool(match["verl"]) == ("verl" in extras), "the verl extra and the cell's own install of verl go together"
    return extras


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
    install_extras("".join(code[0]["source"]))
    headings = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("# ")]
    assert len(headings) == 1, "one title (H1) per chapter"


def test_launch_buttons_point_at_the_repository():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"]
    assert CONFIG["repository"]["branch"] == "main"


def test_the_install_cell_check_rejects_what_breaks_colab():
    good = install_cell("notebook,hf", gaebook.__version__)
    assert install_extras(good) == ["notebook", "hf"]
    for bad in (
        install_cell("notebook,hf", "0.0.1"),  # another edition's gaebook
        good.replace("%pip install", "%pip install -q"),  # pip's summary is what Colab reads
        good.replace("%pip install", "!pip install"),
        install_cell("book", gaebook.__version__),  # Jupyter Book and Sphinx in Colab
        install_cell("hf,notebook", gaebook.__version__),
        install_cell("notebook,hf,hf", gaebook.__version__),
        install_cell("notebook,verl", gaebook.__version__).replace(VERL_LINE, ""),  # no verl on Colab's 3.13
        good + VERL_LINE,  # verl without the extra that brings what verl's trainer module imports
    ):
        with pytest.raises(AssertionError):
            install_extras(bad)


def test_the_verl_line_installs_the_verl_the_extra_leaves_out_on_colabs_python():
    assert install_extras(install_cell("notebook,verl", gaebook.__version__)) == ["notebook", "verl"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    verl = next(r for r in map(Requirement, project["optional-dependencies"]["verl"]) if r.name == "verl")
    pinned = dict(re.findall(r'"([\w-]+)==([^"]+)"', VERL_LINE))
    assert list(pinned) == list(NO_DEPS)
    assert pinned["verl"] in verl.specifier
    assert all(pinned[d] == installed_version(d) for d in NO_DEPS)  # the versions the page runs here
    assert verl.marker.evaluate({"python_version": "3.12"}) and not verl.marker.evaluate({"python_version": "3.13"})


def on_313(requirements: list[str]) -> dict[str, Requirement]:
    """The requirements among ``requirements`` that hold on Python 3.13 (no extra asked for), by name."""
    found = map(Requirement, requirements)
    on = {"python_version": "3.13"}
    return {canonicalize_name(r.name): r for r in found if r.marker is None or r.marker.evaluate(on)}


def test_on_colabs_python_the_verl_extra_brings_what_the_no_deps_line_leaves_out():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    brought = on_313(project["dependencies"] + extras["hf"] + extras["verl"])
    only_313 = {canonicalize_name(Requirement(r).name) for r in extras["verl"] if "python_version >= '3.13'" in r}
    # every requirement of the three as it is declared, but the three themselves and the two bounds the book
    # runs beyond, at Colab's versions: verl's transformers <5.11 and pyvers' packaging <26
    beyond = {("verl", "transformers"), ("pyvers", "packaging")}
    needed = [
        (dist, name, r)
        for dist in NO_DEPS
        for name, r in on_313(requires(dist) or []).items()
        if name not in NO_DEPS and (dist, name) not in beyond
    ]
    assert len(needed) > 10 and all(name in brought for _, name in beyond)
    for dist, name, requirement in needed:
        assert name in brought, f"{dist} requires {requirement}: not in the verl extra on Python 3.13"
        if name in only_313:
            assert set(requirement.specifier) <= set(brought[name].specifier), (dist, requirement, brought[name])
    assert only_313 <= {name for _, name, _ in needed}, "the extra brings more than the three require"
