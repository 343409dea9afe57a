"""Expected errors in the chapters: shown to the reader as their type and message, not a traceback.

A chapter that demonstrates a clear error (bad input to a public function) runs the call inside
:func:`shows_error`, which prints ``ValueError: <message>`` as a reader would read it, with none of the
paths of the machine that executed the book, and fails if the call raised nothing or another error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["shows_error"]


@contextmanager
def shows_error(*expected: type[BaseException], match: str | None = None) -> Iterator[None]:
    """Run the block, which must raise one of ``expected``; print the error's type and message.

    Args:
        expected: the exception classes the block may raise (at least one).
        match: a piece of text the message must contain, if given.

    Raises:
        AssertionError: if the block raised nothing, or a message without ``match``.
        Exception: any error of a type not in ``expected``, unchanged.
    """
    if not expected or not all(isinstance(e, type) and issubclass(e, BaseException) for e in expected):
        raise TypeError(f"expected must be one or more exception classes; got {expected!r}")
    names = " or ".join(e.__name__ for e in expected)
    try:
        yield
    except expected as error:
        if match is not None and match not in str(error):
            raise AssertionError(f"the {type(error).__name__} says {str(error)!r}, without {match!r}") from error
        print(f"{type(error).__name__}: {error}")
        return
    raise AssertionError(f"expected {names}, but nothing was raised")
