"""What a training step computes, for tests that compare two views of the same weights.

E.g. a task model and the packed or fused model that trains its weights.
"""

import numpy as np
import tensorflow as tf


def loss_and_gradients(task, forward, features, labels, variables):
    """`(mean training loss, gradients for variables)` of `forward` on one batch."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(task.loss(labels, forward(features, training=True)))
    return float(loss), tape.gradient(loss, variables)


def assert_same(expected, actual, variables, atol=1e-5):
    """Each variable's gradient equal, or None (untouched) on both sides."""
    for want, got, variable in zip(expected, actual, variables):
        if want is None:
            assert got is None, variable.path
            continue
        np.testing.assert_allclose(
            tf.convert_to_tensor(got), tf.convert_to_tensor(want), atol=atol, err_msg=variable.path
        )
