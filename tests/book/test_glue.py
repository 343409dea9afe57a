"""gaebook.glue: myst-nb's glue under the book build, the value or nothing in a kernel without myst-nb.

The notebook below runs in a real kernel, read back as the book build reads it (myst-nb's own executor
and glue store), so what is compared is what the build records.
"""

from __future__ import annotations

import os
import sys

import nbformat
import pytest
from myst_nb.core.config import NbParserConfig
from myst_nb.core.execute import create_client
from myst_nb.core.read import standard_nb_read
from nbformat.v4 import new_code_cell, new_notebook

from gaebook.glue import glue

VALUES = ["42", "3.25", "'a string'", "[1, 2.5]", "float('nan')"]


class Logger:
    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    """Cells gluing each value with myst-nb's glue and with gaebook's, then gaebook's with myst-nb hidden."""
    cells = [new_code_cell("from myst_nb import glue as reference\nfrom gaebook.glue import glue")]
    for i, value in enumerate(VALUES):
        for display in (False, True):
            cells.append(new_code_cell(f"reference('ref_{i}_{display}', {value}, display={display})"))
            cells.append(new_code_cell(f"glue('ours_{i}_{display}', {value}, display={display})"))
    cells.append(new_code_cell("import sys\nsys.modules['myst_nb'] = None  # a kernel without myst-nb"))
    cells.append(new_code_cell("glue('hidden', 42, display=False)"))
    cells.append(new_code_cell("glue('shown', 42, display=True)"))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    path = tmp_path_factory.mktemp("glue") / "glue.ipynb"
    nbformat.write(nb, path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, old) if p)
    try:
        config = NbParserConfig(execution_mode="force", execution_timeout=120)
        with create_client(standard_nb_read(path.read_text()), path, config, Logger()) as client:
            return client.notebook, client.glue_data
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def outputs(nb, source: str) -> list[dict]:
    (cell,) = [c for c in nb.cells if c.source == source]
    return cell.outputs


@pytest.mark.parametrize("index", range(len(VALUES)))
@pytest.mark.parametrize("display", [False, True])
def test_under_myst_nb_the_build_records_what_myst_nb_glue_records(executed, index, display):
    nb, store = executed
    value = VALUES[index]
    ours = outputs(nb, f"glue('ours_{index}_{display}', {value}, display={display})")
    ref = outputs(nb, f"reference('ref_{index}_{display}', {value}, display={display})")
    # myst-nb keeps a displayed value in the page and moves a hidden one from the outputs to its glue store
    assert len(ours) == len(ref) == int(display)
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine.output_type == theirs.output_type == "display_data"
        assert mine.data == theirs.data
        assert dict(mine.metadata["scrapbook"], name="") == dict(theirs.metadata["scrapbook"], name="")
    mine, theirs = store[f"ours_{index}_{display}"], store[f"ref_{index}_{display}"]
    assert mine["data"] == theirs["data"] and mine["data"]["text/plain"]
    assert mine["metadata"]["scrapbook"] == dict(theirs["metadata"]["scrapbook"], name=f"ours_{index}_{display}")


def test_without_myst_nb_display_false_shows_nothing_and_display_true_shows_the_value(executed):
    nb, store = executed
    assert outputs(nb, "glue('hidden', 42, display=False)") == []
    (shown,) = outputs(nb, "glue('shown', 42, display=True)")
    assert shown.output_type == "display_data" and shown.data == {"text/plain": "42"}
    assert "scrapbook" not in shown.metadata
    assert "hidden" not in store and "shown" not in store


def test_in_plain_python_without_myst_nb(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)
    glue("quiet", 1.5, display=False)
    assert capsys.readouterr().out == ""
    glue("loud", 1.5, display=True)
    assert capsys.readouterr().out == "1.5\n"


BAD = [("", False, ValueError), (3, False, ValueError), ("x", 1, TypeError)]


@pytest.mark.parametrize(("name", "display", "error"), BAD)
def test_bad_arguments_are_named(name, display, error):
    with pytest.raises(error, match="name" if error is ValueError else "display"):
        glue(name, 1, display=display)
