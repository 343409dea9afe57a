"""tools/nbval_to_cache.py: a notebook that passes nbval is found by myst-nb's cache lookup, with
nbval's outputs and run time; a notebook with a failing cell is not cached."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_cache import get_cache
from myst_nb.core.config import NbParserConfig
from myst_nb.core.execute import create_client
from myst_nb.core.read import standard_nb_read
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class RecordingLogger:
    """The logger interface myst-nb's execution clients write to."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def _record(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.messages.append(message)

    debug = info = warning = error = _record


def write_notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nbformat.write(new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC}), path)
    return path


@dataclass
class NbvalRun:
    directory: Path
    cache: Path
    result: subprocess.CompletedProcess[str]
    wall: float  # seconds


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory: pytest.TempPathFactory) -> NbvalRun:
    """One nbval run with the plugin over a notebook that passes and one with a failing cell."""
    directory = tmp_path_factory.mktemp("notebooks")
    passing = write_notebook(
        directory / "passing.ipynb",
        new_markdown_cell("# A page"),
        new_code_cell("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)"),
        new_code_cell("from myst_nb import glue\nglue('answer', 6 * 7, display=False)"),
        new_code_cell("raise ValueError('expected')", metadata={"tags": ["raises-exception"]}),
        new_code_cell("6 * 7"),
    )
    failing = write_notebook(
        directory / "failing.ipynb", new_code_cell("x = 1"), new_code_cell("assert x == 2"), new_code_cell("y = 2")
    )
    cache = directory / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tools.nbval_to_cache"]
    command += ["--jupyter-cache", str(cache), "--nbval-lax", "--nbval-current-env", str(passing), str(failing)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    return NbvalRun(directory, cache, result, time.perf_counter() - started)


def test_passing_notebook_is_what_myst_nb_reads_from_the_cache(nbval_run: NbvalRun) -> None:
    assert "1 failed, 6 passed" in nbval_run.result.stdout, nbval_run.result.stdout + nbval_run.result.stderr
    notebook = nbval_run.directory / "passing.ipynb"

    # myst-nb's cache mode, as the book build runs it: the notebook is read as the build reads it.
    logger = RecordingLogger()
    config = NbParserConfig(execution_mode="cache", execution_cache_path=str(nbval_run.cache))
    source = standard_nb_read(notebook.read_text(encoding="utf8"))
    with create_client(source, notebook, config, logger) as client:
        executed = client.notebook
        glue = client.glue_data
        metadata = client.exec_metadata
    assert any(m.startswith("Using cached notebook") for m in logger.messages), logger.messages
    assert not any(m.startswith("Executing notebook") for m in logger.messages), logger.messages

    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3, 4]
    streams = {out.name: out.text for out in code[0].outputs if out.output_type == "stream"}
    assert streams == {"stdout": "to stdout\n", "stderr": "to stderr\n"}
    assert glue["answer"]["data"]["text/plain"] == "42"
    assert [(out.output_type, out.ename) for out in code[2].outputs] == [("error", "ValueError")]
    assert [(out.output_type, out.execution_count, out.data["text/plain"]) for out in code[3].outputs] == [
        ("execute_result", 4, "42")
    ]
    assert executed.metadata.language_info.name == "python"

    # The execution table's run time is nbval's wall time for the notebook.
    assert metadata is not None and metadata["succeeded"]
    record = get_cache(nbval_run.cache).match_cache_notebook(source)
    assert metadata["runtime"] == record.data["execution_seconds"]
    assert 0 < metadata["runtime"] < nbval_run.wall


def test_notebook_with_a_failing_cell_is_not_cached(nbval_run: NbvalRun) -> None:
    assert "FAILED failing.ipynb::Cell 1" in nbval_run.result.stdout, nbval_run.result.stdout
    records = get_cache(nbval_run.cache).list_cache_records()
    assert [Path(record.uri).name for record in records] == ["passing.ipynb"]
