"""Calls an export's `serving_default` in this process (`tf.saved_model.load`).

For tests whose point is the export's numbers on a real checkpoint: each
task's test on the tiny model already loads its export in a fresh
interpreter (`fresh_process`) that must not import keras or tftransfer;
here loading costs a few seconds instead of a new TensorFlow process.
"""

import tensorflow as tf


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def serve(path, names, rows):
    """`serving_default` of the SavedModel at `path` on `rows`, as plain lists."""
    signature = tf.saved_model.load(path).signatures["serving_default"]
    inputs = {n: tf.constant([r[n] for r in rows]) for n in names}
    return {k: _plain(v.numpy().tolist()) for k, v in signature(**inputs).items()}
