"""A teacher's outputs on the training texts, computed once and stored with the run.

The teacher runs over the texts in batches, with a progress bar, and every
`shard_size` texts the outputs so far are written to a shard file: a run
killed while its teacher works keeps what was done, and the next run (or a
resumed one) computes only what is missing. Shards are keyed by a hash of
each text (and its pair), per teacher, so one folder can serve many runs:
`compare` gives all its cells the grid's folder, and a cell asks the teacher
only about the texts no earlier cell had.

Example:

>>> import tempfile
>>> from tftransfer.distillation.teacher import Teacher
>>> folder = tempfile.mkdtemp()
>>> teacher = Teacher("tests/fixtures/old_run/run")
>>> records = [{"text": "so good"}, {"text": "awful"}]
>>> first = compute(teacher, records, folder, batch_size=2)
>>> again = compute(teacher, records[::-1], folder, batch_size=2)  # read, not computed
>>> sorted(first), bool((first["probabilities"][::-1] == again["probabilities"]).all())
(['probabilities'], True)
"""

import hashlib
import io
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from tftransfer import fileio

#: texts per shard file: what a killed run loses at most.
SHARD_SIZE = 4096
_KEYS = "__keys__"


def record_key(record):
    """20 bytes naming what the teacher reads of a record: its text and text pair."""
    text = record["text"] + "\x00" + (record.get("text_pair") or "")
    return hashlib.sha1(text.encode("utf-8")).digest()


def _store(folder, teacher):
    return os.path.join(folder, teacher.fingerprint)


def _read_shards(store):
    """`{key: {output: row}}` of every shard in `store`."""
    found = {}
    if not tf.io.gfile.isdir(store):
        return found
    for name in sorted(tf.io.gfile.listdir(store)):
        if not name.endswith(".npz"):
            continue
        with tf.io.gfile.GFile(os.path.join(store, name), "rb") as f:
            arrays = dict(np.load(io.BytesIO(f.read())))
        keys = arrays.pop(_KEYS)
        for i, key in enumerate(keys):
            found[key.tobytes()] = {k: v[i] for k, v in arrays.items()}
    return found


def _write_shard(store, index, keys, arrays):
    buffer = io.BytesIO()
    # Raw bytes, not NumPy's "S20": that drops a digest's trailing NUL bytes.
    digests = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 20)
    np.savez(buffer, **{_KEYS: digests}, **arrays)
    fileio.write_bytes(buffer.getvalue(), os.path.join(store, f"part-{index:05d}.npz"))


def compute(teacher, records, folder, batch_size, shard_size=SHARD_SIZE, write=True):
    """`{output: [len(records), ...]}`: the teacher's outputs on `records`, in order.

    Args:
        teacher: a `Teacher` (or anything with `predict(records)` and a
            `fingerprint` and `description`).
        records: `{"text", "text_pair"}` dicts.
        folder: where outputs are stored (a subfolder per teacher); None
            computes them without storing.
        batch_size: texts per teacher call.
        shard_size: texts per shard file.
        write: store what is computed (False: read the store only, as the
            other workers of a multi-worker run do; the chief writes).
    """
    keys = [record_key(r) for r in records]
    store = _store(folder, teacher) if folder else None
    found = _read_shards(store) if store else {}
    first = {}
    for i, key in enumerate(keys):
        if key not in found:
            first.setdefault(key, i)  # a text given twice is asked once
    missing = list(first.values())
    if found:
        logging.info(
            f"Teacher outputs: {len(keys) - len(missing)} of {len(keys)} texts read from {store}."
        )
    if missing:
        logging.info(f"Teacher {teacher.path}: labelling {len(missing)} texts.")
        store = store if write else None
        if store:
            fileio.write_json(
                {"teacher": teacher.path, **teacher.description},
                os.path.join(store, "teacher.json"),
            )
        shards = len([n for n in tf.io.gfile.listdir(store) if n.endswith(".npz")]) if store else 0
        with tqdm(total=len(missing), desc="teacher", unit=" texts", disable=None) as bar:
            for start in range(0, len(missing), shard_size):
                part = missing[start : start + shard_size]
                pieces = []
                for b in range(0, len(part), batch_size):
                    batch = [records[i] for i in part[b : b + batch_size]]
                    outputs = teacher.predict(batch)
                    # The scores; label names and ids are derived from them
                    # (and vary in width per batch for multi-label).
                    pieces.append({k: v for k, v in outputs.items() if v.dtype.kind == "f"})
                    bar.update(len(batch))
                arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
                part_keys = [keys[i] for i in part]
                if store:
                    _write_shard(store, shards, part_keys, arrays)
                    shards += 1
                for j, key in enumerate(part_keys):
                    found[key] = {k: v[j] for k, v in arrays.items()}
    if not keys:
        return {}
    names = list(found[keys[0]])
    return {name: np.stack([found[key][name] for key in keys]) for name in names}
