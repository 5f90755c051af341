"""`train --overwrite`: what must hold before a run folder is emptied.

Emptying a folder loses whatever it held, so it happens last: after the
config, the data paths and the backbone have been checked (a typo in one
must not cost the previous run), and only to a folder that holds a
tftransfer run (its `params.yaml`) or nothing at all.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> open(f"{folder}/thesis.tex", "w").close()
>>> try:
...     check_folder(folder)
... except configs.ConfigError as e:
...     print(str(e).replace(folder, "DIR"))
--overwrite: DIR holds no tftransfer run (no params.yaml); not emptying it
"""

import os

import tensorflow as tf

from tftransfer import backbones, configs, run_dir
from tftransfer.data import readers
from tftransfer.training import run_lock

#: what a run folder holds first (`experiment.train` writes it before training).
PARAMS = run_dir.PARAMS

SPLITS = ("train", "validation", "test", "unlabeled")


def check_folder(model_dir):
    """Raises `ConfigError` unless `model_dir` is missing, empty or a tftransfer run."""
    if not tf.io.gfile.isdir(model_dir):
        return
    entries = [e.rstrip("/") for e in tf.io.gfile.listdir(model_dir)]
    if PARAMS in entries or not [e for e in entries if e != run_lock.LOCK_NAME]:
        return
    raise configs.ConfigError(
        f"--overwrite: {model_dir} holds no tftransfer run (no {PARAMS}); not emptying it"
    )


def check_inputs(params):
    """Raises the error training would meet first if a data path or the backbone is missing."""
    for split in SPLITS:
        path = getattr(params.data, split).path
        if path and not path.startswith("tfds:"):
            readers.expand_paths(path)  # DataError naming the missing file
    backbones.resolve(params.backbone.spec)


def check(params, model_dir):
    """Everything `--overwrite` needs before it may empty `model_dir`."""
    check_folder(model_dir)
    check_inputs(params)


def clear_folder(model_dir):
    """Empties `model_dir` for a fresh start (`train --overwrite`), unless a live run holds it.

    Raises:
        ConfigError: `model_dir` holds files but no tftransfer run.
    """
    check_folder(model_dir)
    with run_lock.run_lock(model_dir):
        for entry in tf.io.gfile.listdir(model_dir):
            entry = entry.rstrip("/")  # gfile marks folders on object stores
            if entry == run_lock.LOCK_NAME:
                continue
            path = os.path.join(model_dir, entry)
            if os.path.islink(path):
                os.remove(path)  # the link, not what it points to
            elif tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
