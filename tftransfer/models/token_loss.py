"""The language-model losses: per-token NLL over targets, and its batch mean.

Shared by the causal- and masked-LM tasks: labels are token ids, -1 where a
position is not a target.

Example:

>>> import tensorflow as tf
>>> from tftransfer.models import token_loss
>>> logits = tf.zeros([1, 3, 4])  # uniform over 4 tokens
>>> nll, mask = token_loss.token_nll(tf.constant([[1, 2, -1]]), logits)
>>> [round(float(x), 4) for x in nll[0]], mask.numpy().tolist()
([1.3863, 1.3863, 0.0], [[1.0, 1.0, 0.0]])
"""

import tensorflow as tf


def token_nll(labels, logits):
    """Per-position negative log-likelihood and target mask, float32."""
    mask = tf.cast(labels >= 0, tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(labels, 0), logits=tf.cast(logits, tf.float32)
    )
    return nll * mask, mask


def per_row_loss(labels, logits):
    """Per-row losses whose mean over rows is the mean over the batch's target tokens.

    Rows hold different numbers of targets; the trainer averages per-row
    losses, so each row's sum is scaled by rows / targets in the batch.
    """
    nll, mask = token_nll(labels, logits)
    rows = tf.cast(tf.shape(labels)[0], tf.float32)
    return tf.reduce_sum(nll, axis=1) * rows / tf.maximum(tf.reduce_sum(mask), 1.0)
