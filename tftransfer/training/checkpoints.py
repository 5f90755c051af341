"""Checkpoint files of a run: the newest intact one, and what a killed save leaves.

A resume reads the newest checkpoint that is whole: one cut short (a full
disk, a copy interrupted) is named and skipped for the one before it, and the
`<prefix>_temp/` folder of a save killed midway is removed. A disk that fills
up while a run saves is one error that says how much a checkpoint needs.
"""

import contextlib
import errno
import os

import tensorflow as tf
from absl import logging

from tftransfer.run_dir import RunDir


def remove_unfinished_saves(folder):
    """Removes what a process killed while saving a checkpoint left in `folder`.

    TensorFlow writes a checkpoint's shards into `<prefix>_temp/` and renames
    them when done; a kill in between leaves that folder (about one model
    size) behind, and nothing else would ever remove it. Returns the paths
    removed.
    """
    if not tf.io.gfile.isdir(folder):
        return []
    removed = []
    for entry in tf.io.gfile.listdir(folder):
        entry = entry.rstrip("/")
        path = os.path.join(folder, entry)
        if entry.endswith("_temp") and tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
            removed.append(path)
    if removed:
        logging.info(f"Removed {len(removed)} unfinished checkpoint save(s): {', '.join(removed)}")
    return removed


def remove_unfinished_run_saves(run_folder):
    """`remove_unfinished_saves` in both checkpoint folders of a run (`checkpoints/`, `best/`)."""
    folder = RunDir(run_folder)
    return remove_unfinished_saves(folder.checkpoints) + remove_unfinished_saves(folder.best)


class CheckpointError(ValueError):
    """No checkpoint of a run can be read."""


def first_line(error):
    """An exception's first line, for a one-line message (TF's can be pages long)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def latest_checkpoint(directory):
    """The newest checkpoint in `directory` (any TF filesystem), or None."""
    return tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None


def restore_newest(manager, model, optimizer, loss_scale=None):
    """Restores the newest intact checkpoint of `manager` into model and optimizer.

    Returns:
        The path restored, or None when the folder holds no checkpoint.

    Raises:
        CheckpointError: there are checkpoints, but none can be read.
    """
    for path in reversed(manager.checkpoints):
        try:
            state = tf.train.Checkpoint(model=model, optimizer=optimizer)
            state.restore(path).assert_existing_objects_matched()
            if loss_scale is not None:
                # Absent when the run was not float16 until now: the
                # scale then starts afresh.
                tf.train.Checkpoint(loss_scale=loss_scale).restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
            # A short data file surfaces as IndexError("Read less bytes ...").
            logging.warning(
                f"Checkpoint {path} is unreadable ({first_line(e)}); trying the one before."
            )
            continue
        logging.info(f"Resuming from {path} (step {int(optimizer.iterations.numpy())}).")
        return path
    if manager.checkpoints:
        raise CheckpointError(
            f"no intact checkpoint in {manager.directory} "
            f"({len(manager.checkpoints)} unreadable); start over with --overwrite"
        )
    return None


class DiskFullError(OSError):
    """The disk filled up while a run was saving: free space and run the same command."""


def _is_full_disk(error):
    # TensorFlow's savers raise ResourceExhaustedError with the OS message;
    # Python's file writes raise OSError(ENOSPC).
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def _megabytes(size):
    return f"{size / 2**20:,.1f} MB" if size >= 2**20 else f"{max(size, 1) / 2**10:,.1f} KB"


@contextlib.contextmanager
def full_disk_error(folder, checkpoint_bytes):
    """Turns "no space left on device" while writing into `folder` into a `DiskFullError`.

    What the failed save left (`ckpt-N_temp/` in `checkpoints/` and `best/`)
    is removed; complete checkpoints and the best one stay, so the same
    command resumes once there is space.

    Args:
        folder: the run folder this process writes.
        checkpoint_bytes: `() -> int`, about how much one checkpoint takes.
    """
    try:
        yield
    except (tf.errors.OpError, OSError) as e:
        if not _is_full_disk(e):
            raise
        remove_unfinished_run_saves(folder)
        raise DiskFullError(
            f"{folder}: no space left on the device while saving the run; a checkpoint of this "
            f"model takes about {_megabytes(checkpoint_bytes())}. Free space and run the same "
            "command: training resumes from the last complete checkpoint."
        ) from None
