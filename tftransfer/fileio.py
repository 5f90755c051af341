"""Files of a run, written so that a crash never leaves half of one.

Everything goes through `tf.io.gfile`, so a model_dir may be a `gs://`
bucket (TPUs read and write only there) or any TF filesystem: a file is
written beside its place and renamed over it, a folder is built as
`.tmp-<name>-<pid>` and renamed into place (`atomic_folder`), and leftovers
of a killed writer are removed by the next one.

Example:

>>> import os, tempfile
>>> from tftransfer import fileio
>>> path = os.path.join(tempfile.mkdtemp(), "summary.json")
>>> fileio.write_json({"steps": 3}, path)
>>> fileio.read_json(path)
{'steps': 3}
"""

import contextlib
import json
import os

import tensorflow as tf


def write_text(text, path):
    """Writes `text` through a temporary file so a crash leaves no half file."""
    _write(text, path, "w")


def write_bytes(data, path):
    """Writes `data` (bytes) through a temporary file so a crash leaves no half file."""
    _write(data, path, "wb")


def _write(data, path, mode):
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, mode) as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path):
    """Reads a JSON file from any TF filesystem."""
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(data, path):
    """Writes JSON through a temporary file so a crash leaves no half file."""
    write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)


def _local(path):
    return "://" not in path


@contextlib.contextmanager
def atomic_folder(final):
    """Yields a temporary folder to write into; renames it to `final` if the block succeeds.

    The temporary folder, `.tmp-<name>-<pid>` beside `final`, is removed on
    any error (or Ctrl-C), so a crash leaves no half folder at `final`
    (exports, backbone presets). One left by a killed process (whose pid no
    longer runs) is removed the next time a folder is written there.

    Example:

    >>> import os, tempfile
    >>> parent = tempfile.mkdtemp()
    >>> with atomic_folder(os.path.join(parent, "1")) as tmp:
    ...     open(os.path.join(tmp, "saved_model.pb"), "w").close()
    >>> os.listdir(parent)
    ['1']
    """
    parent, name = os.path.split(os.path.abspath(final) if _local(final) else final)
    tf.io.gfile.makedirs(parent)
    remove_stale_temporaries(parent)
    # TF Serving only loads all-digit folder names, so it ignores this one.
    tmp = os.path.join(parent, f"{TMP_PREFIX}{name}-{os.getpid()}")
    remove_tree(tmp)
    tf.io.gfile.makedirs(tmp)
    try:
        yield tmp
        if _local(final):
            os.rename(tmp, final)
        else:
            _move_files(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise


def _move_files(source, target):
    """Moves a folder's files one by one, for filesystems without folders.

    Object stores (gs://) and TF's ram:// have no folders to rename, only
    objects named by path (ram:// renames the one name and orphans the
    files under it). Not atomic there, which the export tolerates: TF
    Serving polls for all-digit folders, and `saved_model.pb` is moved last.
    """
    found = {
        os.path.join(folder, name)[len(source) :].lstrip("/")
        for folder, _, names in tf.io.gfile.walk(source)
        for name in names
    }
    # ram:// lists by name prefix, so walking `assets` also yields
    # `assets.extra`'s files as `assets/.extra/...`: keep only real files.
    files = [f for f in found if not tf.io.gfile.isdir(os.path.join(source, f))]
    files = [f for f in files if tf.io.gfile.exists(os.path.join(source, f))]
    files.sort(key=lambda f: (f == "saved_model.pb", f))
    for relative in files:
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(target, relative)))
        tf.io.gfile.rename(os.path.join(source, relative), os.path.join(target, relative))
    remove_tree(source)


def copy_files(source, target):
    """Copies a local folder's files into `target` on any TF filesystem."""
    for folder, _, names in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target if relative == "." else os.path.join(target, relative)
        tf.io.gfile.makedirs(destination)
        for name in names:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(destination, name), True)


def remove_tree(path):
    """Removes a folder (any TF filesystem) if it exists."""
    if tf.io.gfile.exists(path):
        try:
            tf.io.gfile.rmtree(path)
        except tf.errors.NotFoundError:
            pass  # ram:// lists names it no longer holds; what is left is gone


TMP_PREFIX = ".tmp-"


def process_running(pid):
    """Whether process `pid` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def remove_stale_temporaries(parent):
    """Removes `atomic_folder` leftovers in `parent` whose writer is gone.

    Only on a local disk: on a shared filesystem the pid may be another host's.
    """
    if not _local(parent):
        return
    for entry in tf.io.gfile.listdir(parent):
        entry = entry.rstrip("/")
        pid = entry.rpartition("-")[2]
        if entry.startswith(TMP_PREFIX) and pid.isdigit() and not process_running(int(pid)):
            remove_tree(os.path.join(parent, entry))
