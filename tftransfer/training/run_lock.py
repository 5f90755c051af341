"""One training process per model_dir: an advisory lock file.

Two `train` processes on one folder would interleave `history.jsonl` and
overwrite each other's checkpoints, so the second refuses. The lock file
(`<model_dir>/train.lock`) names its owner's pid, host and start time, and
its owner touches it every `HEARTBEAT_SECONDS` (a heartbeat). A lock whose
owner is gone is stale and taken over with a warning: on the same host when
the pid no longer runs, from any host (a chief restarted elsewhere on a
shared folder) when the heartbeat is older than `STALE_AFTER_SECONDS`.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with run_lock(folder):
...     pass  # train here
"""

import contextlib
import json
import os
import socket
import threading
import time

from absl import logging

from tftransfer import fileio, run_dir
from tftransfer.run_dir import RunDir

LOCK_NAME = run_dir.LOCK
#: a lock file still empty after this long was left by a writer that died
#: between creating and filling it.
EMPTY_LOCK_GRACE_SECONDS = 10.0
#: how often the owner touches its lock file.
HEARTBEAT_SECONDS = 60.0
#: a lock not touched for this long is taken over from any host: ten missed
#: heartbeats (a live owner on a loaded machine still beats well within it).
STALE_AFTER_SECONDS = 600.0


class RunLockedError(RuntimeError):
    """Another live process is training into the same model_dir."""


def _owner(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stale(path, owner, host):
    try:
        age = time.time() - os.path.getmtime(path)
    except FileNotFoundError:
        return True
    if owner is None or not isinstance(owner.get("pid"), int):
        return age > EMPTY_LOCK_GRACE_SECONDS
    if owner.get("host") == host:
        return not fileio.process_running(owner["pid"])
    return age > STALE_AFTER_SECONDS  # another host: only the heartbeat says


def _heartbeat(path, pid, stop):
    """Touches `path` every `HEARTBEAT_SECONDS` while this process owns it, until `stop` is set."""
    while not stop.wait(HEARTBEAT_SECONDS):
        if (_owner(path) or {}).get("pid") != pid:
            return
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def run_lock(model_dir):
    """Holds `<model_dir>/train.lock` for the block; `RunLockedError` if a live process holds it.

    A model_dir on an object store (`gs://...`) is not locked: it has no
    atomic create-if-absent through `tf.io.gfile`, and pids mean nothing
    across hosts there.
    """
    if "://" in model_dir:
        yield
        return
    created = not os.path.exists(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    path = RunDir(model_dir).lock
    host = socket.gethostname()
    me = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if _stale(path, owner, host):
                logging.warning("%s: taking over the stale lock of %s", model_dir, owner)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            who = "an unknown process"
            if owner:
                who = (
                    f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('started')})"
                )
            raise RunLockedError(
                f"{model_dir} is being trained by {who}; wait for it to finish, use another "
                f"--model_dir, or delete {path} if that process is gone (a lock from another "
                f"host is taken over once untouched for {STALE_AFTER_SECONDS / 60:.0f} minutes)"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, me["pid"], stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        if (_owner(path) or {}).get("pid") == me["pid"]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        if created:
            # A run refused by its checks (data, backbone) leaves no empty folder.
            with contextlib.suppress(OSError):
                os.rmdir(model_dir)  # only if empty
