"""Small tables for the chapters' outputs: a grid of cells shown as an HTML table on the site.

A chapter that would print rows of numbers returns a :class:`Table` as its cell's last value
instead. Jupyter and the book's HTML build show it as an HTML table with a header row; anything
that reads only plain text (a terminal, the PDF) gets the same cells in aligned columns.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["Table"]


class Table:
    """A table of ``header`` (the column names) over ``rows`` (each a sequence of the same length).

    Cells are shown with ``str``: format numbers before passing them (e.g. ``f"{x:.3f}"``). An empty
    string leaves a cell blank. ``caption``, if given, is shown above the table.
    """

    def __init__(self, header: Sequence[object], rows: Sequence[Sequence[object]], *, caption: str | None = None):
        if isinstance(header, str) or not isinstance(header, Sequence) or len(header) == 0:
            raise ValueError("header must be a non-empty sequence of column names")
        if isinstance(rows, str) or not isinstance(rows, Sequence):
            raise TypeError(f"rows must be a sequence of rows, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != len(header):
                raise ValueError(f"rows[{i}] must be a sequence of {len(header)} cells, one per column")
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"caption must be a string or None, got {type(caption).__name__}")
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        self.caption = caption

    def _repr_html_(self) -> str:
        head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        grid = [self.header, *self.rows]
        widths = [max(len(r[j]) for r in grid) for j in range(len(self.header))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)
