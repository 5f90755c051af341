"""Calls an export's signatures in this process (`tf.saved_model.load`).

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


def load(path):
    """The SavedModel at `path`."""
    return tf.saved_model.load(path)


def call(model, signature="serving_default", **inputs):
    """`model`'s `signature` on lists of inputs; its outputs as plain lists."""
    outputs = model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: _plain(v.numpy().tolist()) for k, v in outputs.items()}
