"""The version of gaebook: the one place it is set.

pyproject.toml reads it (``[tool.setuptools.dynamic]``), ``gaebook.__version__`` re-exports it, and every
chapter's install cell pins it, so a notebook runs with the gaebook its text was executed with.
"""

__version__ = "0.1.0"
