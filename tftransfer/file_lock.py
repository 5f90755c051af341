"""An exclusive lock between processes on one machine (`fcntl.flock`).

For work that several processes may start at once and that needs doing once
(converting the default decoder): the first holds the lock and does it, the
others wait and then find it done. Released when the block ends or the
process dies.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "convert.lock")
>>> with exclusive(path):
...     pass  # check whether it is done; do it if not
"""

import contextlib
import os


@contextlib.contextmanager
def exclusive(path):
    """Holds an exclusive lock on the file `path` (created if missing) for the block.

    Where there is no `fcntl` (Windows) nothing is locked: at worst two
    processes both do the work.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
