"""The package's tests. This folder is on ``sys.path`` (pytest puts a conftest's folder there), so
the tests in its subfolders import the shared helpers ``host_traffic`` and ``fake_cuda`` by name."""
