"""tools/colab/check.py: Colab's versions read right, and every change the install makes reported."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.colab import check

ROOT = Path(__file__).resolve().parents[2]

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
    after = after.replace("transformers==5.15.0", "transformers==5.10.4")
    lines, problems = check.diff(check.parse_freeze(BEFORE), check.parse_freeze(after))
    assert lines == [
        "added    gaebook 0.1.0",
        "upgraded requests 2.32.4 -> 2.33.0",
        "DOWNGRADED transformers 5.15.0 -> 5.10.4",
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("ipykernel==6.17.1", "ipykernel==6.29.5", "ipykernel, one of Colab's fragile packages"),
        ("ipykernel==6.17.1", "", "ipykernel, one of Colab's fragile packages"),
        ("numpy==2.1.3", "numpy==1.26.4", "numpy downgraded"),
        ("scipy==1.16.3", "", "scipy removed"),
        (
            "torch @ https://download.pytorch.org/whl/cpu/torch-2.11.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl",
            "torch==2.10.0",
            "torch downgraded",
        ),
    ],
)
def test_a_fragile_change_or_a_guarded_downgrade_fails(old, new, problem):
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
    after.write_text(BEFORE)
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0 and "the install changed nothing" in result.stdout


def test_the_requirement_is_every_install_cells_extras_at_one_version(capsys):
    requirement = check.requirement("9.9.9")
    extras = set(re.fullmatch(r"gaebook\[([\w,]+)\]==9\.9\.9", requirement)[1].split(","))
    assert not extras & check.NOT_ON_COLAB.keys()
    reported = capsys.readouterr().err
    for path in check.notebooks():
        cell = set(re.search(r"gaebook\[([\w,]+)\]", check.code_cells(path)[0])[1].split(","))
        assert cell - check.NOT_ON_COLAB.keys() <= extras, path.name
        assert (f"left out: {path.name}" in reported) == bool(cell & check.NOT_ON_COLAB.keys())


def test_the_imports_script_imports_what_every_chapter_imports():
    script = check.imports_script()
    tree = ast.parse(script)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "gaebook.glue" for n in tree.body)
    for path in check.notebooks():
        if check.left_out(path):
            assert not re.search(r"^import verl$", script, re.MULTILINE)
            continue
        for source in check.code_cells(path)[1:]:
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    assert ast.unparse(node) in script.splitlines(), (path.name, ast.unparse(node))


def test_the_environment_key_follows_colabs_set_and_gaebooks_requirements(monkeypatch, tmp_path):
    first = check.key()
    assert re.fullmatch(r"[0-9a-f]{16}", first) and check.key() == first
    freeze = tmp_path / "pip-freeze.txt"
    freeze.write_text(check.FREEZE.read_text().replace("numpy==2.1.3", "numpy==2.2.0"))
    monkeypatch.setattr(check, "FREEZE", freeze)
    assert check.key() != first
