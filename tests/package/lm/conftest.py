"""`make floors` runs the package's tests at the lowest versions gaebook admits, without the llm
extra (transformers, TRL, verl); the tests of the Hugging Face and verl bridges need it and are
left out there. `make test` installs the extra, and tests/book/test_library_versions.py fails if
any of its libraries is missing, so these tests cannot vanish from it unnoticed."""

from importlib.util import find_spec

collect_ignore = [] if find_spec("transformers") and find_spec("verl") else ["test_hf.py", "test_verl.py"]
