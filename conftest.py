"""Fixtures for every test item: the tests under tests/ and the package's doctests.

(tests/conftest.py's fixtures reach only tests/; these must also reach the
docstring examples under tftransfer/.)
"""

import os
import tempfile

import pytest


@pytest.fixture(autouse=True)
def temp_dir_in_basetemp(tmp_path_factory, monkeypatch):
    """Points `tempfile` (and subprocesses' `TMPDIR`) into this run's basetemp.

    Docstring examples call `tempfile.mkdtemp()` and leave their folders (a
    trained run is ~200 MB); under the basetemp, pytest removes them with the
    run's other folders (it keeps the last three runs) instead of /tmp
    filling up run after run.
    """
    path = str(tmp_path_factory.mktemp("tempfile"))
    monkeypatch.setattr(tempfile, "tempdir", path)
    monkeypatch.setenv("TMPDIR", path)


@pytest.fixture(scope="session", autouse=True)
def decoder_cache(tmp_path_factory):
    """A converter cache of this test run's own: SmolLM2's GGUF is converted once per run.

    Every test and doctest that asks for the default decoder shares that one
    conversion (the pytest-xdist workers too: the first converts, holding the
    converter's lock, the others wait), and it is made by the code under
    test, never taken from an earlier run's `~/.cache`.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's, shared by its workers
    path = str(root / "tftransfer-cache")
    os.makedirs(path, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFTRANSFER_CACHE", path)
        yield path
