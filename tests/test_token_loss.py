"""The language-model loss equals TF's cross-entropy kernel, value and gradient."""

import numpy as np
import pytest
import tensorflow as tf

from tftransfer.models import token_loss


def _loss_and_gradient(nll_fn, labels, logits):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        # Unequal weights per position, so a gradient routed to the wrong row shows.
        count = tf.cast(tf.size(labels), tf.float32)
        weights = tf.reshape(tf.range(1.0, 1.0 + count), labels.shape)
        loss = tf.reduce_sum(nll_fn(labels, logits) * weights)
    return loss, tape.gradient(loss, logits)


def _tf_kernel(labels, logits):
    mask = tf.cast(labels >= 0, tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.maximum(labels, 0), tf.cast(logits, tf.float32)
    )
    return nll * mask


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_chunked_loss_equals_tfs_kernel_across_chunks(monkeypatch, dtype):
    monkeypatch.setattr(token_loss, "_CHUNK_VALUES", 3 * 11)  # 3 rows a chunk, the last padded
    rng = np.random.default_rng(0)
    logits = tf.cast(rng.normal(size=(2, 5, 11)) * 4, dtype)
    labels = tf.constant(rng.integers(0, 11, size=(2, 5)), tf.int32)
    labels = tf.tensor_scatter_nd_update(labels, [[0, 1], [1, 4]], [-1, -1])  # not targets
    loss, grad = _loss_and_gradient(lambda y, x: token_loss.token_nll(y, x)[0], labels, logits)
    want_loss, want_grad = _loss_and_gradient(_tf_kernel, labels, logits)
    assert grad.dtype == logits.dtype
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    tolerance = 1e-6 if dtype == "float32" else 2**-8  # bf16: one rounding of the same value
    np.testing.assert_allclose(
        tf.cast(grad, tf.float32), tf.cast(want_grad, tf.float32), rtol=tolerance, atol=1e-6
    )
    np.testing.assert_array_equal(grad[0, 1], tf.zeros([11], dtype))  # masked: no gradient


def test_loss_of_an_empty_batch_is_empty():
    nll, mask = token_loss.token_nll(tf.zeros([0, 4], tf.int32), tf.zeros([0, 4, 9]))
    assert nll.shape == mask.shape == (0, 4)
