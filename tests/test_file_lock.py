"""`file_lock.exclusive`: one holder at a time, released when the block ends."""

import pytest

from tftransfer import file_lock

fcntl = pytest.importorskip("fcntl")


def _free(path):
    """Whether another open file could take the lock now (without waiting)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_the_lock_is_held_inside_the_block_and_released_after(tmp_path):
    path = str(tmp_path / "cache" / "decoder.lock")  # its folder is created
    with file_lock.exclusive(path):
        assert not _free(path)
    assert _free(path)


def test_an_error_in_the_block_releases_the_lock(tmp_path):
    path = str(tmp_path / "decoder.lock")
    with pytest.raises(OSError):
        with file_lock.exclusive(path):
            raise OSError("disk full")
    assert _free(path)
