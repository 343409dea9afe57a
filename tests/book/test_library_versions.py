"""Every library version the book names is checked, so that none goes stale unnoticed.

The book's text (the Markdown cells of every notebook under ``book/`` and the ``.md`` pages) is
searched for ``<library> <version>``, with a library name from :data:`LIBRARIES` and a version of
at least two parts (``1.16.0``, ``0.29``, ``2.x``; a bare major number such as "TensorFlow 1" names
a generation and is not read). Each mention must be

* the installed version of a library the book runs (:func:`importlib.metadata.version`): ``1.16.0``
  equals it, ``1.16`` and ``1.x`` are its prefix, and ``1.1 and later`` (or ``or later``) is at
  most it; or
* the version of a transcription: a docstring or a run of comment lines that says "Transcribed
  from", names the same library and version, and names a commit (``commit 0123abc``), in a module
  of ``gaebook`` or a code cell of a notebook.

A failure names the file and the cell.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"

# The libraries the book may name with a version: the spellings in its text, and the distribution
# to compare with when it is installed (None: the book only transcribes it).
LIBRARIES: dict[str, tuple[str, str | None]] = {
    "TRL": (r"TRL", "trl"),
    "transformers": (r"[Tt]ransformers", "transformers"),
    "tokenizers": (r"tokenizers", "tokenizers"),
    "datasets": (r"datasets", "datasets"),
    "accelerate": (r"accelerate", "accelerate"),
    "PEFT": (r"PEFT|peft", "peft"),
    "verl": (r"verl", "verl"),
    "OpenRLHF": (r"OpenRLHF", None),
    "DeepSpeed": (r"DeepSpeed", "deepspeed"),
    "vLLM": (r"vLLM", "vllm"),
    "Ray": (r"Ray", "ray"),
    "CleanRL": (r"CleanRL", None),
    "Spinning Up": (r"Spinning Up", None),
    "Stable-Baselines3": (r"Stable[- ]Baselines3|SB3", "stable-baselines3"),
    "Gymnasium": (r"Gymnasium", "gymnasium"),
    "Gym": (r"(?:OpenAI )?Gym", "gym"),
    "PyTorch": (r"PyTorch|torch", "torch"),
    "TorchRL": (r"TorchRL", "torchrl"),
    "NumPy": (r"NumPy", "numpy"),
    "SciPy": (r"SciPy", "scipy"),
    "JAX": (r"JAX", "jax"),
    "TensorFlow": (r"TensorFlow", "tensorflow"),
}
_NAMES = "|".join(f"(?P<lib{i}>{spelling})" for i, (spelling, _) in enumerate(LIBRARIES.values()))
MENTION = re.compile(
    rf"(?<![\w.-])(?:{_NAMES})\s+v?(?P<version>\d+(?:\.\d+)*\.(?:\d+|x))(?![\w.])"
    r"(?P<later>\s+(?:and|or)\s+later)?"
)
COMMIT = re.compile(r"\bcommit\s+[0-9a-f]{7,40}\b")


@dataclass(frozen=True)
class Mention:
    library: str
    version: str
    or_later: bool

    def __str__(self) -> str:
        return f"{self.library} {self.version}" + (" and later" if self.or_later else "")


def mentions(text: str) -> list[Mention]:
    """The ``<library> <version>`` mentions of ``text``."""
    found = []
    for match in MENTION.finditer(text):
        index = next(int(k[3:]) for k, v in match.groupdict().items() if k.startswith("lib") and v is not None)
        found.append(Mention(list(LIBRARIES)[index], match["version"], match["later"] is not None))
    return found


def installed(library: str) -> Version | None:
    """The installed version of ``library``'s distribution, or None."""
    distribution = LIBRARIES[library][1]
    if distribution is None:
        return None
    try:
        return Version(version(distribution))
    except PackageNotFoundError:
        return None


def matches_installed(mention: Mention, have: Version | None) -> bool:
    if have is None:
        return False
    parts = mention.version.split(".")
    if mention.or_later:
        return "x" not in parts and have >= Version(mention.version)
    wanted = tuple(int(p) for p in parts if p != "x")
    return have.release[: len(wanted)] == wanted


def comment_blocks(source: str) -> list[str]:
    """The docstrings and the runs of consecutive comment lines of a piece of Python code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    blocks = [
        doc
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (doc := ast.get_docstring(node))
    ]
    run: list[str] = []
    last_line = -2
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        if token.start[0] != last_line + 1 and run:
            blocks.append("\n".join(run))
            run = []
        run.append(token.string.lstrip("#").strip())
        last_line = token.start[0]
    if run:
        blocks.append("\n".join(run))
    return blocks


def transcribed(blocks: list[str]) -> set[tuple[str, str]]:
    """``(library, version)`` named in the transcription headers among ``blocks``."""
    return {
        (m.library, m.version)
        for block in blocks
        if "transcribed from" in block.lower() and COMMIT.search(block)
        for m in mentions(block)
    }


def problems(text: str, headers: set[tuple[str, str]]) -> list[str]:
    """Why each unchecked mention of ``text`` fails; empty when every mention is checked."""
    out = []
    for m in mentions(text):
        have = installed(m.library)
        if matches_installed(m, have) or (not m.or_later and (m.library, m.version) in headers):
            continue
        where = f"the installed {have}" if have is not None else f"{m.library} not installed"
        out.append(f"{m!s}: not {where}, and no transcription header names it with a commit")
    return out


def notebooks() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def book_headers() -> set[tuple[str, str]]:
    """The transcription headers of gaebook's modules and of the notebooks' code cells."""
    blocks = [b for module in sorted((ROOT / "gaebook").rglob("*.py")) for b in comment_blocks(module.read_text())]
    for path in notebooks():
        blocks += [b for c in cells(path) if c["cell_type"] == "code" for b in comment_blocks("".join(c["source"]))]
    return transcribed(blocks)


def texts() -> list[tuple[str, str]]:
    """``(where, text)`` for every Markdown cell of every notebook and every ``.md`` page of the book."""
    out = []
    for path in notebooks():
        for i, cell in enumerate(cells(path)):
            if cell["cell_type"] == "markdown":
                out.append((f"{path.relative_to(ROOT)} cell {i}", "".join(cell["source"])))
    out += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted(BOOK.rglob("*.md"))]
    return out


def test_every_version_the_book_names_is_installed_or_transcribed():
    headers = book_headers()
    failures = [f"{where}: {problem}" for where, text in texts() for problem in problems(text, headers)]
    assert not failures, "\n".join(failures)


def test_the_scan_reads_the_book():
    found = [m for _, text in texts() for m in mentions(text)]
    assert found, "no version mention found: the pattern no longer reads the book"
    headers = book_headers()
    assert headers, "no transcription header found in gaebook or the notebooks"


# The checker itself, on made-up text: each of these must be able to fail.
TRL = installed("TRL")


@pytest.mark.skipif(TRL is None, reason="needs trl installed")
def test_the_installed_version_passes_and_any_other_fails():
    assert TRL is not None
    major, minor = TRL.release[:2]
    for ok in (str(TRL), f"{major}.{minor}", f"{major}.x", f"{major}.0 and later"):
        assert not problems(f"We run TRL {ok} here.", set()), ok
    for wrong in (f"{major}.{minor + 1}", f"{major + 1}.x", f"{major}.{minor + 1} and later"):
        assert problems(f"We run TRL {wrong} here.", set()), wrong


def test_a_transcribed_version_needs_its_header_with_a_commit():
    text = "OpenRLHF 0.11.2 defaults to λ = 1."
    assert problems(text, set())
    header = "Transcribed from OpenRLHF 0.11.2, openrlhf/trainer/ppo_utils/experience_maker.py, commit 3c3be6234e0c."
    assert not problems(text, transcribed(comment_blocks(f"# {header}\nx = 1\n")))
    assert problems(text, transcribed(comment_blocks('"""Transcribed from OpenRLHF 0.11.2."""\n')))
    assert problems("OpenRLHF 0.11.3 too.", transcribed(comment_blocks(f"# {header}\n")))


def test_the_pattern_reads_each_spelling_and_skips_what_is_not_a_version():
    text = (
        "Stable Baselines3 2.x, SB3 2.1, Gymnasium 1.1 and\nlater, OpenAI Gym 0.26.2, TensorFlow 1, a Gymnasium env, "
        "verl\n0.9"
    )
    assert [str(m) for m in mentions(text)] == [
        "Stable-Baselines3 2.x",
        "Stable-Baselines3 2.1",
        "Gymnasium 1.1 and later",
        "Gym 0.26.2",
        "verl 0.9",
    ]
