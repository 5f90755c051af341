"""Dropout in fewer passes: 16 random bits per element, and a gradient that is one multiply.

TensorFlow's `stateless_dropout` (what Keras' `Dropout` runs) draws a
uniform float per element (a Philox draw of 32 bits each), compares, scales
and selects; its gradient selects and scales again. In a bfloat16 MiniLM
training step that is about a sixth of the time (BENCHMARKS.md, "Fewer, fused
ops"). Here each 32-bit draw gives two elements 16 bits each, the mask is
made once as the multiplier `1 / (1 - rate)` or 0, and the gradient is the
upstream gradient times that multiplier: 0.55 to 0.6 times the time of TF's
forward and backward. 16 bits keep `rate` to 1/65536 (Keras' bfloat16
dropout draws 7-bit uniforms: a rate of 0.1 keeps 89.8%, this 90.0%).

Not XLA: compiled by XLA the whole dropout ran slower inside a training step
than TF's own ops, though faster alone.

Example:

>>> import tensorflow as tf
>>> from tftransfer.models.lean_dropout import dropout
>>> y = dropout(tf.ones([4, 1000]), 0.25, tf.constant([1, 2]))
>>> sorted({float(v) for v in tf.reshape(y, [-1])})
[0.0, 1.3333333730697632]
"""

import tensorflow as tf


def _keep_bits(shape, seed):
    """Uniform 16-bit integers of `shape` (last axis even), two per 32-bit Philox output."""
    half = tf.concat([shape[:-1], [shape[-1] // 2]], 0)
    bits = tf.random.stateless_uniform(half, seed, dtype=tf.uint32, minval=None, maxval=None)
    return tf.reshape(tf.bitcast(bits, tf.uint16), shape)


def multiplier(x, rate, seed):
    """`1 / (1 - rate)` where an element of `x` is kept (probability `1 - rate`), else 0.

    In `x`'s dtype and shape. A last axis of unknown or odd size draws TF's
    own uniform floats instead of 16-bit integers.
    """
    last = x.shape[-1] if x.shape.rank else None
    if last is None or last % 2:
        keep = tf.random.stateless_uniform(tf.shape(x), seed, dtype=x.dtype) >= rate
    else:
        keep = _keep_bits(tf.shape(x), seed) >= tf.constant(round(rate * 65536), tf.uint16)
    return tf.where(keep, tf.constant(1.0 / (1.0 - rate), x.dtype), tf.zeros([], x.dtype))


def dropout(x, rate, seed):
    """`x / (1 - rate)` where the element is kept (probability `1 - rate`), else 0.

    The same function as `tf.nn.experimental.stateless_dropout` (other
    random numbers from the same seed, unless the last axis is odd).

    Args:
        x: a float tensor.
        rate: a Python float in `[0, 1)`.
        seed: an int32 `[2]` seed (`compat.dropout_seed` draws a Keras layer's);
            unused at rate 0.
    """
    if not rate:
        return x
    scale = multiplier(x, rate, seed)

    @tf.custom_gradient
    def scaled(x):
        return x * scale, lambda dy: dy * scale

    return scaled(x)
