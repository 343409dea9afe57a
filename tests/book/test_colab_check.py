"""tools/colab/check.py: Colab's versions read right, and every change the install makes reported."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# tools/ is scripts, not a package on the path: load the module from its file, as the other tools' tests do
_spec = importlib.util.spec_from_file_location("colab_check", ROOT / "tools" / "colab" / "check.py")
assert _spec is not None and _spec.loader is not None
check = importlib.util.module_from_spec(_spec)
sys.modules["colab_check"] = check
_spec.loader.exec_module(check)

BEFORE = """\
ipykernel==6.17.1
numpy==2.1.3
requests==2.32.4
scipy==1.16.3
torch @ https://download.pytorch.org/whl/cpu/torch-2.11.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl
google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz
transformers==5.15.0
"""


def test_freeze_lines_give_versions_and_url_wheels_their_wheel_version():
    found = check.parse_freeze(BEFORE)
    assert found["torch"] == "2.11.0+cpu"
    assert found["numpy"] == "2.1.3"
    assert "google-colab" not in found  # a source tree: nothing PyPI could install
    assert check.parse_freeze("Prompt_Toolkit==3.0.53\n# a comment\n") == {"prompt-toolkit": "3.0.53"}


def test_colab_file_has_every_package_the_check_guards():
    colab = check.colab_versions()
    assert set(check.FRAGILE) | set(check.GUARDED) | set(check.RUNNER) <= colab.keys()
    assert colab["ipython"] == "7.34.0" and colab["ipykernel"] == "6.17.1" and colab["numpy"] == "2.1.3"
    assert check.FREEZE.read_text().startswith("# Colab's package set: pip-freeze.txt of the repository googlecolab")
    pins = check.constraints()
    assert "torch==2.11.0" in pins and not any(p.startswith(("nvidia-", "cuda-")) for p in pins)


def test_an_install_that_leaves_colab_alone_passes_and_is_reported():
    after = BEFORE.replace("requests==2.32.4", "requests==2.33.0") + "gaebook==0.1.0\n"
    after = after.replace("transformers==5.15.0", "transformers==5.16.0")
    lines, problems = check.diff(check.parse_freeze(BEFORE), check.parse_freeze(after))
    assert lines == [
        "added    gaebook 0.1.0",
        "upgraded requests 2.32.4 -> 2.33.0",
        "upgraded transformers 5.15.0 -> 5.16.0",
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("ipykernel==6.17.1", "ipykernel==6.29.5", "ipykernel, one of Colab's fragile packages"),
        ("ipykernel==6.17.1", "", "ipykernel, one of Colab's fragile packages"),
        ("numpy==2.1.3", "numpy==1.26.4", "numpy downgraded"),
        # any package Colab ships, not only those the chapters rely on (verl's pins did this)
        ("transformers==5.15.0", "transformers==5.10.4", "transformers downgraded from Colab's 5.15.0 to 5.10.4"),
        ("requests==2.32.4", "requests==2.32.3", "requests downgraded"),
        ("scipy==1.16.3", "", "scipy removed"),
        (
            "torch @ https://download.pytorch.org/whl/cpu/torch-2.11.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl",
            "torch==2.10.0",
            "torch downgraded",
        ),
    ],
)
def test_a_fragile_change_a_downgrade_or_a_guarded_removal_fails(old, new, problem):
    lines, problems = check.diff(check.parse_freeze(BEFORE), check.parse_freeze(BEFORE.replace(old, new)))
    assert len(lines) == 1 and len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_guarded_upgrade_or_a_local_label_is_no_problem():
    after = BEFORE.replace("numpy==2.1.3", "numpy==2.2.0")
    after = re.sub(r"torch @ .*", "torch==2.11.0", after)
    lines, problems = check.diff(check.parse_freeze(BEFORE), check.parse_freeze(after))
    assert "upgraded numpy 2.1.3 -> 2.2.0" in lines and problems == []


def test_the_diff_command_exits_non_zero_on_a_problem(tmp_path):
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    before.write_text(BEFORE)
    after.write_text(BEFORE.replace("numpy==2.1.3", "numpy==2.0.0"))
    command = [sys.executable, str(ROOT / "tools" / "colab" / "check.py"), "diff", str(before), str(after)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "numpy downgraded from Colab's 2.1.3 to 2.0.0" in result.stdout
    assert "no fragile or downgraded package" not in result.stdout
    after.write_text(BEFORE.replace("transformers==5.15.0", "transformers==5.10.4"))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "transformers downgraded from Colab's 5.15.0 to 5.10.4" in result.stdout
    after.write_text(BEFORE.replace("requests==2.32.4", "requests==2.33.0"))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.endswith("1 packages changed\nno fragile or downgraded package\n")
    after.write_text(BEFORE)
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0 and "the install changed nothing" in result.stdout


def test_the_installs_are_every_install_cells_extras_at_one_version_then_each_cells_own_lines():
    first, *others = check.installs("9.9.9")
    assert len(first) == 1
    extras = set(re.fullmatch(r"gaebook\[([\w,]+)\]==9\.9\.9", first[0])[1].split(","))
    # the verl page's: verl declares Python < 3.13, and verl's and tensordict's own requirements would
    # downgrade Colab's transformers and packaging
    verl_line = ["--ignore-requires-python", "--no-deps", "verl==0.9.1", "tensordict==0.10.0", "pyvers==0.1.0"]
    assert verl_line in others
    assert len(others) == len({tuple(line) for line in others})  # each install once
    for path in check.notebooks():
        cell = check.code_cells(path)[0]
        assert set(re.search(r"gaebook\[([\w,]+)\]", cell)[1].split(",")) <= extras, path.name
        for args in re.findall(r"^ +%pip install (.+)$", cell, re.MULTILINE)[1:]:
            assert args.replace('"', "").split() in others, (path.name, args)


def test_an_install_cell_must_install_gaebook_first(monkeypatch, tmp_path):
    cell = 'import sys\n\nif "google.colab" in sys.modules:\n    %pip install --ignore-requires-python "verl==0.9.1"'
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": cell}]}))
    with pytest.raises(SystemExit, match=r"page\.ipynb: its install cell's first line installs no gaebook"):
        check.pip_lines(path)
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": cell.replace("    %pip", '    %pip install "gaebook[notebook,verl]==1.0"\n    %pip'),
                    }
                ]
            }
        )
    )
    assert check.pip_lines(path) == [["gaebook[notebook,verl]==1.0"], ["--ignore-requires-python", "verl==0.9.1"]]
    assert check.install_extras(path) == ["notebook", "verl"]


def report(*names: str) -> dict:
    """The part of a ``pip install --dry-run --report`` that ``check.base`` reads."""
    return {"install": [{"metadata": {"name": name}} for name in names]}


def test_the_base_holds_colabs_version_of_what_any_install_resolves_to():
    pins = check.base([report("Transformers", "gaebook"), report("orjson", "verl")])
    assert "transformers==5.15.0" in pins and "orjson==3.12.0" in pins  # Colab's, from both installs
    assert not any(p.startswith(("gaebook", "verl")) for p in pins)  # not in Colab's set
    assert "orjson==3.12.0" not in check.base([report("transformers")])


def test_the_imports_script_imports_what_every_chapter_imports():
    script = check.imports_script()
    tree = ast.parse(script)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "gaebook.glue" for n in tree.body)
    assert re.search(r"^import verl$", script, re.MULTILINE)  # the verl page's too: Colab installs verl
    for path in check.notebooks():
        for source in check.code_cells(path)[1:]:
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    assert ast.unparse(node) in script.splitlines(), (path.name, ast.unparse(node))


def test_the_environment_key_follows_colabs_set_and_gaebooks_requirements(monkeypatch, tmp_path):
    first = check.key()
    assert re.fullmatch(r"[0-9a-f]{16}", first) and check.key() == first
    installs = check.installs
    monkeypatch.setattr(check, "installs", lambda v: [*installs(v), ["--ignore-requires-python", "verl==0.9.2"]])
    assert check.key() != first  # an install cell's own line
    monkeypatch.setattr(check, "installs", installs)
    assert check.key() == first
    freeze = tmp_path / "pip-freeze.txt"
    freeze.write_text(check.FREEZE.read_text().replace("numpy==2.1.3", "numpy==2.2.0"))
    monkeypatch.setattr(check, "FREEZE", freeze)
    assert check.key() != first
