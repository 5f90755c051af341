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

# Values (rows x vocabulary) per chunk of `row_nll`: a chunk's float32 copy
# (12 MB) stays in cache through the passes over it.
_CHUNK_VALUES = 3 * 2**20


def token_nll(labels, logits):
    """Per-position negative log-likelihood and target mask, float32."""
    mask = tf.cast(labels >= 0, tf.float32)
    vocabulary = logits.shape[-1] or tf.shape(logits)[-1]
    nll = row_nll(tf.reshape(logits, [-1, vocabulary]), tf.reshape(tf.maximum(labels, 0), [-1]))
    return tf.reshape(nll, tf.shape(labels)) * mask, mask


@tf.custom_gradient
def row_nll(logits, labels):
    """`tf.nn.sparse_softmax_cross_entropy_with_logits` in chunks of rows, float32 math.

    `logits` is `[rows, vocabulary]` in any float type, `labels` `[rows]`.
    TF's kernel makes its passes over the whole `[rows, vocabulary]` matrix in
    float32 (400 MB for 2,048 tokens of a 49k vocabulary) and keeps its
    gradient; here each chunk of rows is read while it is in cache, the
    backward pass recomputes the softmax from the saved log-sum-exp and gives
    the gradient in `logits`' own type. Equal to TF's to float32 rounding,
    and faster on CPU (BENCHMARKS.md, "Fine-tuning speed against HF `Trainer`").
    """
    vocabulary = logits.shape[-1] or tf.shape(logits)[-1]
    rows = max(1, _CHUNK_VALUES // vocabulary) if isinstance(vocabulary, int) else 64
    chunked_logits, count = _chunks(logits, rows)
    chunked_labels, _ = _chunks(labels, rows)

    def forward(chunk):
        x, label = chunk
        x = tf.cast(x, tf.float32)
        top = tf.reduce_max(x, axis=-1)
        lse = tf.math.log(tf.reduce_sum(tf.exp(x - top[:, None]), axis=-1)) + top
        return lse, lse - tf.gather(x, label, batch_dims=1)

    lse, nll = tf.map_fn(
        forward,
        (chunked_logits, chunked_labels),
        fn_output_signature=(tf.float32, tf.float32),
        parallel_iterations=1,  # chunks in turn: in parallel they would share the cache
    )

    def gradient(upstream):
        chunked_upstream, _ = _chunks(upstream, rows)

        def backward(chunk):
            x, label, chunk_lse, dy = chunk
            softmax_dy = tf.exp(tf.cast(x, tf.float32) - chunk_lse[:, None]) * dy[:, None]
            at_label = tf.stack([tf.range(tf.shape(label)[0]), label], axis=1)
            return tf.cast(tf.tensor_scatter_nd_sub(softmax_dy, at_label, dy), logits.dtype)

        grads = tf.map_fn(
            backward,
            (chunked_logits, chunked_labels, lse, chunked_upstream),
            fn_output_signature=logits.dtype,
            parallel_iterations=1,
        )
        return tf.reshape(grads, [-1, vocabulary])[:count], None

    return tf.reshape(nll, [-1])[:count], gradient


def _chunks(x, rows):
    """`x` `[n, ...]` zero-padded to `[ceil(n / rows), rows, ...]`, and n."""
    count = tf.shape(x)[0]
    padded = tf.pad(x, [[0, -count % rows]] + [[0, 0]] * (len(x.shape) - 1))
    return tf.reshape(padded, tf.concat([[-1, rows], tf.shape(x)[1:]], axis=0)), count


def per_row_loss(labels, logits):
    """Per-row losses whose mean over rows is the mean over the batch's target tokens.

    Rows hold different numbers of targets; the trainer averages per-row
    losses, so each row's sum is scaled by rows / targets in the batch.
    """
    nll, mask = token_nll(labels, logits)
    rows = tf.cast(tf.shape(labels)[0], tf.float32)
    return tf.reduce_sum(nll, axis=1) * rows / tf.maximum(tf.reduce_sum(mask), 1.0)
