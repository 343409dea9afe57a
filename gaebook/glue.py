"""``glue``: a value of a chapter recorded for the book's text to quote, with or without myst-nb.

Under the book build and ``make notebooks`` myst-nb is installed (the ``book`` extra), and ``glue`` is
myst-nb's own: its output is what the build reads. A reader's kernel without myst-nb (Colab, with the
``notebook`` extra) has nothing that reads such a record, so there a value glued with ``display=False``
shows nothing and one glued with ``display=True`` is displayed, as myst-nb's ``glue`` displays it.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` for the book's ``{glue}`` roles; show it if ``display``.

    The signature and the default are myst-nb's ``glue(name, variable, display=True)``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(display, bool):
        raise TypeError(f"display must be a bool, got {type(display).__name__}")
    try:
        from myst_nb import glue as myst_nb_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_nb_glue(name, value, display)
