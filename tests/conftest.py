from hypothesis import settings

# Deterministic property tests: the same examples on every run and machine.
settings.register_profile("book", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("book")
