"""The lean dropout is TF's dropout: its rate, scaling, gradient and seeds."""

import numpy as np
import pytest
import tensorflow as tf

from tftransfer.models.lean_dropout import dropout


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_keeps_one_minus_rate_scaled_and_the_gradient_uses_the_same_mask(dtype):
    rng = np.random.default_rng(0)
    x = tf.cast(rng.uniform(1.0, 2.0, size=(64, 512)), dtype)  # no zeros: dropped ones show
    upstream = tf.cast(rng.normal(size=(64, 512)), dtype)
    seed = tf.constant([3, 4], tf.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dropout(x, 0.25, seed)
    grad = tape.gradient(y, x, output_gradients=upstream)
    kept = y != 0
    assert abs(float(tf.reduce_mean(tf.cast(kept, tf.float32))) - 0.75) < 0.01
    np.testing.assert_array_equal(y, tf.where(kept, x * tf.cast(1 / 0.75, dtype), 0))
    np.testing.assert_array_equal(grad, tf.where(kept, upstream * tf.cast(1 / 0.75, dtype), 0))


def test_a_seed_is_one_mask_and_another_seed_another():
    x = tf.ones([8, 6, 64])
    seed = tf.constant([5, 0], tf.int32)
    first = dropout(x, 0.5, seed)
    np.testing.assert_array_equal(dropout(x, 0.5, seed), first)
    other = dropout(x, 0.5, seed + [0, 1])
    agree = tf.reduce_mean(tf.cast((other != 0) == (first != 0), "float32"))
    assert float(agree) < 0.6  # independent masks agree on half the places


def test_a_rate_of_zero_is_the_identity_and_an_odd_last_axis_takes_tfs_op():
    x = tf.ones([4, 7])
    seed = tf.constant([1, 2], tf.int32)
    assert dropout(x, 0.0, seed) is x
    np.testing.assert_array_equal(
        dropout(x, 0.5, seed), tf.nn.experimental.stateless_dropout(x, 0.5, seed=seed)
    )
