"""What the book's derived editions share: the student edition (``tools/student.py``) and the
translations (``tools/i18n.py``) are built from notebooks whose code cells are the book's, so they
reuse the English build's execution instead of running anything again.

- :func:`executed` finds a notebook's execution in the book's jupyter-cache (``make book`` or
  ``make notebooks`` fills it) and returns the notebook with those outputs.
- :class:`EditionCache` holds an edition's own notebooks with those outputs and the English
  execution's record, so that its status page shows each notebook's execution as the book's build
  recorded it.
- :func:`build` builds an edition's site strictly (warnings are errors, references checked) from that
  cache, executing nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"


def executed(
    notebook: nbformat.NotebookNode, name: str, cache_path: Path = CACHE
) -> tuple[dict, nbformat.NotebookNode]:
    """The record data of ``notebook``'s execution in the jupyter-cache at ``cache_path`` and the notebook
    with its outputs; ``name`` is used in the error.

    Raises:
        ValueError: if the cache holds no execution of a notebook with these code cells.
    """
    from jupyter_cache import get_cache

    cache = get_cache(cache_path)
    try:
        record = cache.match_cache_notebook(notebook)
    except KeyError as error:
        raise ValueError(f"{name} has no execution in {cache_path}: build the English book first") from error
    _, with_outputs = cache.merge_match_into_notebook(notebook)
    return record.data, with_outputs


class EditionCache:
    """A jupyter-cache of an edition's notebooks, emptied when opened."""

    def __init__(self, path: Path) -> None:
        import shutil

        from jupyter_cache import get_cache

        shutil.rmtree(path, ignore_errors=True)
        self.path = path
        self._cache = get_cache(path)

    def add(self, notebook: nbformat.NotebookNode, path: Path, data: dict) -> None:
        """Store ``notebook``, written at ``path``, with the English execution's record ``data``."""
        from jupyter_cache.base import CacheBundleIn

        self._cache.cache_notebook_bundle(CacheBundleIn(notebook, str(path), data=data), check_validity=False)


def build(source: Path, out: Path, cache: Path, **overrides: Any) -> int:
    """Build the HTML site of the edition in ``source`` into ``out`` from the jupyter-cache ``cache``,
    with the book's strict settings and the Sphinx ``overrides``; return Sphinx's status (0 is success).
    Its doctrees go beside ``source``."""
    from jupyter_book.sphinx import build_sphinx

    result = build_sphinx(
        source,
        out,
        noconfig=True,
        path_config=str(source / "_config.yml"),
        confoverrides={
            "external_toc_path": (source / "_toc.yml").as_posix(),
            "latex_individualpages": False,
            "nitpicky": True,
            # The book's PDF is the English edition's, with the solutions: only its site offers it.
            "book_pdf": "",
            # Every notebook is found in the edition's cache: nothing runs, and the status page shows
            # each notebook's execution as the book's build recorded it.
            "nb_execution_mode": "cache",
            "nb_execution_cache_path": str(cache),
            **overrides,
        },
        builder="html",
        doctreedir=source.parent / ".doctrees",
        warningiserror=True,
        keep_going=True,
    )
    return 1 if isinstance(result, Exception) or result else 0
