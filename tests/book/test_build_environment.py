"""The status page's table of what built the book (tools/build_environment.py)."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

from docutils import nodes

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_environment", ROOT / "tools" / "build_environment.py")
build_environment = sys.modules["build_environment"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_environment)


def test_the_rows_are_the_machine_python_and_each_package_with_its_installed_version(monkeypatch):
    monkeypatch.setattr(build_environment, "PACKAGES", ("numpy", "no-such-distribution-of-gaebook"))
    rows = dict(build_environment.environment())
    assert rows["Python"] == platform.python_version()
    assert rows["CPU cores"] == str(os.cpu_count())
    assert rows["Processor"] == platform.machine()
    assert rows["numpy"] == version("numpy")
    assert rows["no-such-distribution-of-gaebook"] == build_environment.NOT_INSTALLED
    assert list(rows)[-2:] == ["numpy", "no-such-distribution-of-gaebook"]


def test_the_table_has_a_header_and_a_row_per_entry():
    rows = [("Python", "3.11.7"), ("torch", "2.13.0")]
    table = build_environment.table(rows, ("Component", "Version"))
    header = [entry.astext() for entry in table.findall(nodes.thead)].pop()
    body = [[entry.astext() for entry in row.findall(nodes.entry)] for row in next(table.findall(nodes.tbody)).children]
    assert header.split() == ["Component", "Version"]
    assert body == [["Python", "3.11.7"], ["torch", "2.13.0"]]
