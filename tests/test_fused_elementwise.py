"""XLA-fused element-wise chains equal keras-hub's arithmetic and TF's derivative.

In float32 and bfloat16; unfused, the functions are that arithmetic's own ops.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.compat import keras_hub_internals
from tftransfer.models import fused_elementwise

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 3, 4, 8)) * 3  # [batch, tokens, heads, head_dim]
SECOND = RNG.normal(size=(2, 3, 4, 8))  # the gated product's `up`
WEIGHT = 1 + 0.1 * RNG.normal(size=8)  # the norm's float32 scale
ANGLES = RNG.normal(size=(1, 3, 1, 4))
MASK = np.where(RNG.random(size=(2, 1, 4, 8)) < 0.3, -1e9, 0.0).astype("float32")  # per row
UPSTREAM = RNG.normal(size=(2, 3, 4, 8)).astype("float32")


def _reference(name, x, second):
    """keras-hub's arithmetic, differentiated by TensorFlow."""
    if name == "rms":
        x32 = tf.cast(x, tf.float32)
        normed = x32 * tf.math.rsqrt(tf.reduce_mean(x32 * x32, axis=-1, keepdims=True) + 1e-5)
        return tf.cast(normed * second, x.dtype)
    if name == "silu_gated":
        return second * tf.cast(tf.nn.silu(tf.cast(x, tf.float32)), x.dtype)
    if name == "masked_softmax":
        return tf.cast(tf.nn.softmax(tf.cast(x, tf.float32) + MASK), x.dtype)
    if name == "exact_gelu":  # compat.exact_gelu
        return keras_hub_internals.exact_gelu(x)
    if name == "layer_norm":  # Keras' own, as a block's norm computes it
        return keras.ops.layer_normalization(x, second, -tf.reverse(second, [0]), epsilon=1e-5)
    cos, sin = (tf.cast(np.concatenate([f(ANGLES)] * 2, -1), x.dtype) for f in (np.cos, np.sin))
    first, last = tf.split(x, 2, axis=-1)
    return x * cos + tf.concat([-last, first], axis=-1) * sin  # keras-hub's rotate_half


def _fused(name, x, second):
    if name == "rms":
        return fused_elementwise.scaled_rms(x, second, 1e-5, fused=True)
    if name == "silu_gated":
        return fused_elementwise.silu_gated(x, second, fused=True)
    if name == "masked_softmax":
        return fused_elementwise.masked_softmax(x, tf.constant(MASK), fused=True)
    if name == "exact_gelu":
        return fused_elementwise.exact_gelu(x, fused=True)
    if name == "layer_norm":
        return fused_elementwise.layer_norm(x, second, -tf.reverse(second, [0]), 1e-5, fused=True)
    cos = tf.cast(np.concatenate([np.cos(ANGLES)] * 2, -1), x.dtype)
    signed_sin = tf.cast(np.concatenate([-np.sin(ANGLES), np.sin(ANGLES)], -1), x.dtype)
    return fused_elementwise.rotate(x, cos, signed_sin, fused=True)


def _values_and_gradients(fn, x, second):
    with tf.GradientTape() as tape:
        tape.watch([x, second])
        out = fn(x, second)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * UPSTREAM)
    grads = [g for g in tape.gradient(loss, [x, second]) if g is not None]
    assert out.dtype == x.dtype and grads[0].dtype == x.dtype
    return [tf.cast(t, tf.float32).numpy() for t in [out, *grads]]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "name", ["rms", "layer_norm", "silu_gated", "rotate", "masked_softmax", "exact_gelu"]
)
def test_fused_chain_and_gradient_equal_tfs(name, dtype):
    x = tf.cast(X, dtype)
    norm = name in ("rms", "layer_norm")
    second = tf.constant(WEIGHT, tf.float32) if norm else tf.cast(SECOND, dtype)
    got = _values_and_gradients(lambda a, b: _fused(name, a, b), x, second)
    want = _values_and_gradients(lambda a, b: _reference(name, a, b), x, second)
    # the rotation's angles and the mask are constants; GELU has one input
    assert len(got) == (2 if name in ("rotate", "masked_softmax", "exact_gelu") else 3)
    # bfloat16 keeps 8 bits: a rounding more or less; XLA's float32 sigmoid
    # differs from Eigen's in the last bits.
    tolerance = 2**-7 if dtype == "bfloat16" else 1e-5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance * np.abs(w).max())


def _gradients(fn, inputs):
    """The output and each input's gradient (in the input's dtype), as float32 arrays."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn(*inputs)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * UPSTREAM.reshape(out.shape))
    grads = tape.gradient(loss, inputs)
    assert out.dtype == inputs[0].dtype and [g.dtype for g in grads] == [t.dtype for t in inputs]
    return [tf.cast(t, tf.float32).numpy() for t in [out, *grads]]


def _assert_close(got, want, dtype):
    tolerance = 2**-7 if dtype == "bfloat16" else 1e-5  # bfloat16: a rounding more or less
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance * np.abs(w).max())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_biased_gelu_and_its_bias_gradient_equal_tfs_in_float32(dtype):
    # the bias in the compute dtype, as Keras' autocasting reads it in a layer's call
    x, bias = tf.cast(X.reshape(-1, 8), dtype), tf.cast(SECOND[0, 0, 0], dtype)
    got = _gradients(fused_elementwise.biased_exact_gelu, [x, bias])
    as32 = [tf.cast(t, tf.float32) for t in (x, bias)]  # the same inputs, TF's float32 arithmetic
    want = _gradients(lambda a, b: keras_hub_internals.exact_gelu(a + b), as32)
    assert len(got) == 3
    _assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("dropout", [True, False])
def test_residual_layer_norm_and_its_gradients_equal_tfs_in_float32(dtype, dropout):
    rows = X.reshape(-1, 8)
    x, residual = tf.cast(rows, dtype), tf.cast(SECOND.reshape(-1, 8), dtype)
    bias = tf.cast(SECOND[1, 2, 0], dtype)  # as autocasting reads it
    gamma, beta = tf.constant(WEIGHT, tf.float32), tf.constant(-WEIGHT[::-1], tf.float32)
    scale = None
    if dropout:
        scale = tf.cast(np.where(RNG.random(rows.shape) < 0.25, 0.0, 1 / 0.75), dtype)

    def fused(x, bias, residual, gamma, beta):
        return fused_elementwise.residual_layer_norm(
            x, bias, residual, gamma, beta, 1e-5, scale=scale
        )

    def reference(x, bias, residual, gamma, beta):  # keras-hub's tail, in float32
        h = x + bias
        h = h if scale is None else h * tf.cast(scale, tf.float32)
        return keras.ops.layer_normalization(h + residual, gamma, beta, epsilon=1e-5)

    got = _gradients(fused, [x, bias, residual, gamma, beta])
    as32 = [tf.cast(t, tf.float32) for t in (x, bias, residual, gamma, beta)]
    want = _gradients(reference, as32)
    assert len(got) == 6
    _assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("dropout", [True, False])
def test_attention_probs_and_their_gradient_equal_tfs_in_float32(dtype, dropout):
    scores = tf.cast(X.transpose(0, 2, 1, 3), dtype)  # [batch, heads, queries, keys]
    bias = tf.constant(MASK[:, :, :3])  # [batch, 1, queries, keys]
    multiplier = None
    if dropout:
        multiplier = tf.cast(np.where(RNG.random(scores.shape) < 0.25, 0.0, 1 / 0.75), dtype)

    def fused(scores):
        return fused_elementwise.attention_probs(scores, bias, 0.25, multiplier)

    def reference(scores):  # keras-hub's: scaled, masked, softmax, dropout; in float32
        probs = tf.nn.softmax(scores * 0.25 + bias)
        return probs if multiplier is None else probs * tf.cast(multiplier, tf.float32)

    got = _gradients(fused, [scores])
    want = _gradients(reference, [tf.cast(scores, tf.float32)])
    _assert_close(got, want, dtype)
