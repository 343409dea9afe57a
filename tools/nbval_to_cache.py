"""A pytest plugin: every notebook nbval runs without a failing cell goes into a jupyter-cache.

``make test`` runs the chapters once, under nbval, with this plugin and ``--jupyter-cache
_build/.jupyter_cache``; the strict book build that follows (``execute_notebooks: cache`` in
_config.yml) then finds each chapter there and renders those outputs instead of executing it again.

What is stored is what the book build's own executor would store for the same run:

- the notebook as nbval read it, each code cell's outputs rebuilt from the kernel messages nbval read,
  by nbclient's own message handling (streams, displays, display updates, clear_output, errors),
  execution counts 1, 2, ... and the kernel's ``language_info``;
- cached under jupyter-cache's hash of the notebook's code and kernelspec, which is how myst-nb
  looks it up (``match_cache_notebook``);
- with nbval's wall time for the notebook, kernel start to shutdown, as ``execution_seconds`` in the
  record's data: the run time the book's execution table shows.

A notebook with any cell that failed, was skipped or was not collected is not stored, so the book
build executes it (and fails on it) as it would without the cache.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn, JupyterCacheAbstract
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbval.plugin import IPyNbCell, IPyNbFile

KERNEL_INFO_TIMEOUT = 60  # seconds


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("nbval").addoption(
        "--jupyter-cache",
        metavar="PATH",
        default=None,
        help="store every notebook whose cells all pass in the jupyter-cache at PATH, as myst-nb's "
        "cache execution mode looks it up",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("jupyter_cache")
    if path is None:
        return
    # The controller creates the cache's database before any xdist worker writes to it.
    if not hasattr(config, "workerinput"):
        open_cache(path)
    config.pluginmanager.register(NotebookCacher(path), "nbval_to_cache")


def open_cache(path: str | Path) -> JupyterCacheAbstract:
    """The jupyter-cache at ``path``, its database created if it does not exist yet."""
    cache = get_cache(path)
    cache.get_cache_limit()  # a first query creates the database
    return cache


@dataclass
class NotebookRun:
    """One notebook under nbval: its outputs so far and whether every cell has passed."""

    notebook: nbformat.NotebookNode
    started: float
    client: NotebookClient
    code_cells: list[int]  # the notebook's indices of its code cells
    cells_passed: int = 0
    failed: bool = False

    @classmethod
    def start(cls, file: IPyNbFile) -> NotebookRun:
        notebook = copy.deepcopy(file.nb)
        return cls(
            notebook=notebook,
            started=time.perf_counter(),
            client=NotebookClient(notebook, record_timing=False),  # as jupyter-cache runs nbclient
            code_cells=[i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"],
        )

    def record_cell(self, item: IPyNbCell, messages: list[dict[str, Any]]) -> None:
        """Rebuild ``item``'s outputs from the kernel's iopub ``messages``, as nbclient does."""
        index = self.code_cells[item.cell_num]
        cell = self.notebook.cells[index]
        cell.outputs = []
        self.client.clear_before_next_output = False
        execute_ids = {m["parent_header"].get("msg_id") for m in messages if m["msg_type"] == "execute_input"}
        for message in messages:
            if message["parent_header"].get("msg_id") not in execute_ids:
                continue
            try:
                self.client.process_message(message, cell, index)
            except CellExecutionComplete:
                break
        # nbval executes without storing history; a fresh kernel under nbclient counts 1, 2, ...
        cell.execution_count = item.cell_num + 1
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = cell.execution_count

    @property
    def complete(self) -> bool:
        return not self.failed and self.cells_passed == len(self.code_cells)


class NotebookCacher:
    """Follows nbval's cells notebook by notebook and caches each notebook that passed whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.runs: dict[str, NotebookRun] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        if not isinstance(item, IPyNbCell):
            return (yield)
        file = item.parent
        if file.nodeid not in self.runs:
            self.runs[file.nodeid] = NotebookRun.start(file)
        run = self.runs[file.nodeid]
        result = yield
        if nextitem is None or nextitem.parent is not file:
            # The notebook's last cell: its teardown has shut the kernel down.
            del self.runs[file.nodeid]
            if run.complete:
                self.store(file, run, time.perf_counter() - run.started)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if not isinstance(item, IPyNbCell):
            return (yield)
        file = item.parent
        run = self.runs[file.nodeid]
        if "language_info" not in run.notebook.metadata:
            reply = file.kernel.kc.kernel_info(reply=True, timeout=KERNEL_INFO_TIMEOUT)
            run.notebook.metadata["language_info"] = reply["content"]["language_info"]
        messages: list[dict[str, Any]] = []
        read = file.get_kernel_message

        def recording_read(timeout: float | None = None, stream: str = "iopub") -> dict[str, Any]:
            message = read(timeout=timeout, stream=stream)
            if stream == "iopub":
                messages.append(message)
            return message

        file.get_kernel_message = recording_read
        try:
            return (yield)
        finally:
            del file.get_kernel_message
            run.record_cell(item, messages)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report: pytest.TestReport = yield
        run = self.runs.get(item.parent.nodeid) if isinstance(item, IPyNbCell) else None
        if run is not None:
            if report.failed or (report.when == "call" and not report.passed):
                run.failed = True
            elif report.when == "call":
                run.cells_passed += 1
        return report

    def store(self, file: IPyNbFile, run: NotebookRun, seconds: float) -> None:
        open_cache(self.path).cache_notebook_bundle(
            CacheBundleIn(run.notebook, str(file.path), data={"execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )
