"""Shared by the language-model tests: one torch thread, and the llm extra's tests left out where it is
not installed.

`make floors` runs the package's tests at the lowest versions gaebook admits, without the llm
extra (transformers, TRL, verl); the tests of the Hugging Face and verl bridges and of the reward
model (a Hugging Face backbone) need it and are left out there. `make test` installs the extra, and
tests/book/test_library_versions.py fails if any of its libraries is missing, so these tests cannot
vanish from it unnoticed."""

from importlib.util import find_spec

import pytest
import torch

collect_ignore = [] if find_spec("transformers") and find_spec("verl") else ["test_hf.py", "test_verl.py"]
if not find_spec("transformers"):  # the reward model's backbone is a Hugging Face model
    collect_ignore.append("test_reward_model.py")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
