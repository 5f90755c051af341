"""Sequence packing: the examples of a batch share rows.

Used for training batches (`data.packing`: text and token classification)
and, in exported text and token classifiers, for every serving request
(question answering's exports take the packed layout with a row per window:
`one_per_row`). A batch of
`batch_size` encoded rows (each `[CLS] ... [SEP]` then padding, `length`
wide) is packed first-fit-decreasing into as few rows of `length` as hold
them; for training the row count is rounded up to a multiple of
`row_multiple(batch_size)` so compiled steps see at most `MAX_SHAPES`
shapes. Examples keep their batch order: a packed model returns one output
per example, in that order (per-token outputs go back to the unpacked layout
with `unpack`), so the task's loss and the batch's size in examples are
unchanged (an optimizer step sees the same examples as without packing).

Packed features, all int32:
    token_ids, segment_ids, padding_mask: `[rows, length]`.
    position_ids: `[rows, length]`, restarting at 0 for each example.
    example_ids: `[rows, length]`, the token's example in the batch, -1 for
        padding. A token attends only to tokens of its own example.
    example_starts: `[batch]`, flat index (`row * length + column`) of each
        example's first token.

keras-hub has no packing for encoders (its packers truncate and pad one
sequence per row), hence this module.

Example:

>>> import tensorflow as tf
>>> from tftransfer.data import packing
>>> features = {
...     "token_ids": tf.constant([[101, 7, 102, 0, 0, 0], [101, 102, 0, 0, 0, 0]]),
...     "segment_ids": tf.zeros([2, 6], tf.int32),
...     "padding_mask": tf.constant([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]),
... }
>>> packed, labels = packing.pack_batch(features, tf.constant([0, 1]), static_shapes=False)
>>> packed["token_ids"].numpy().tolist()  # both examples in one row
[[101, 7, 102, 101, 102, 0]]
>>> packed["example_ids"].numpy().tolist(), packed["position_ids"].numpy().tolist()
([[0, 0, 0, 1, 1, -1]], [[0, 1, 2, 0, 1, 0]])
"""

import numpy as np
import tensorflow as tf

# Packed row counts are rounded up to a multiple of batch_size / this, so a
# batch takes one of at most this many shapes (one XLA program each).
MAX_SHAPES = 8


def row_multiple(batch_size):
    """Row counts of packed batches are multiples of this."""
    return max(1, batch_size // MAX_SHAPES)


PACKED_FEATURES = (
    "token_ids",
    "segment_ids",
    "padding_mask",
    "position_ids",
    "example_ids",
)


def first_fit_decreasing(lengths, capacity):
    """Assigns each length a row and a column so that rows hold at most `capacity`.

    Graph ops only, so that training input pipelines and exported serving
    functions pack alike (a `tf.while_loop` over the examples, longest first).

    Args:
        lengths: 1-D int32 tensor, each at most `capacity`.
        capacity: the row length (an int or a scalar int32 tensor).

    Returns:
        `(row, column, num_rows)`: per-length row index and start column, and
        the number of rows used.
    """
    lengths = tf.convert_to_tensor(lengths, tf.int32)
    capacity = tf.convert_to_tensor(capacity, tf.int32)
    n = tf.shape(lengths)[0]
    checks = [
        tf.debugging.assert_less_equal(
            lengths, capacity, message="an example has more tokens than a packed row holds"
        )
    ]
    with tf.control_dependencies(checks):
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    zeros = tf.zeros([n], tf.int32)

    def place(k, used, row, column):
        i = order[k]
        # The first row with room; there always is one, as a row per example exists.
        r = tf.argmax(tf.cast(used + lengths[i] <= capacity, tf.int32), output_type=tf.int32)
        row = tf.tensor_scatter_nd_update(row, [[i]], [r])
        column = tf.tensor_scatter_nd_update(column, [[i]], [used[r]])
        used = tf.tensor_scatter_nd_add(used, [[r]], [lengths[i]])
        return k + 1, used, row, column

    _, _, row, column = tf.while_loop(
        lambda k, *_: k < n, place, (tf.constant(0), zeros, zeros, zeros)
    )
    num_rows = tf.reduce_max(tf.concat([row, [-1]], 0)) + 1
    return row, column, num_rows


def pack(features, multiple=1):
    """Packs `[batch, length]` rows into as few rows of `length` as hold them.

    Args:
        features: dict with `token_ids`, `segment_ids` and `padding_mask`,
            each `[batch, length]`, tokens before padding in every row.
        multiple: the packed row count is rounded up to a multiple of this.

    Returns:
        The packed features described in the module docstring.
    """
    mask = tf.cast(features["padding_mask"], tf.bool)
    length = tf.shape(mask)[1]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    row, column, num_rows = first_fit_decreasing(lengths, length)
    rows = (num_rows + multiple - 1) // multiple * multiple
    starts = row * length + column
    # Every real token's example and its place in that example.
    within = tf.ragged.range(lengths)
    example = tf.cast(within.value_rowids(), tf.int32)
    place = tf.gather(starts, example) + within.flat_values
    place = place[:, None]

    def scatter(values, fill):
        flat = tf.fill([rows * length], tf.constant(fill, tf.int32))
        flat = tf.tensor_scatter_nd_update(flat, place, tf.cast(values, tf.int32))
        return tf.reshape(flat, [rows, length])

    out = {
        "token_ids": scatter(tf.boolean_mask(features["token_ids"], mask), 0),
        "segment_ids": scatter(tf.boolean_mask(features["segment_ids"], mask), 0),
        "padding_mask": scatter(tf.ones_like(example), 0),
        "position_ids": scatter(within.flat_values, 0),
        "example_ids": scatter(example, -1),
        "example_starts": starts,
    }
    return out


def one_per_row(features):
    """`features` in the packed layout, every example in a row of its own.

    For a model that takes packed features on rows that would gain nothing
    from sharing: a packed model runs the backbone's blocks through
    `LeanBert` (fused ops) where the unpacked model runs keras-hub's, and a
    request of long rows (question answering's windows) spends more on
    attention in shared rows than the padding they save (BENCHMARKS.md).

    Args:
        features: dict with `token_ids`, `segment_ids` and `padding_mask`,
            each `[batch, length]`, tokens before padding in every row.

    Returns:
        The features of `pack`, with `batch` rows in batch order.

    Example:

    >>> features = {
    ...     "token_ids": tf.constant([[101, 7, 102], [101, 102, 0]]),
    ...     "segment_ids": tf.zeros([2, 3], tf.int32),
    ...     "padding_mask": tf.constant([[1, 1, 1], [1, 1, 0]]),
    ... }
    >>> rows = one_per_row(features)
    >>> rows["example_ids"].numpy().tolist(), rows["example_starts"].numpy().tolist()
    ([[0, 0, 0], [1, 1, -1]], [0, 3])
    """
    mask = tf.cast(features["padding_mask"], tf.bool)
    rows, length = tf.shape(mask)[0], tf.shape(mask)[1]
    out = {k: tf.cast(features[k], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
    out["position_ids"] = tf.where(mask, tf.range(length)[tf.newaxis, :], 0)
    out["example_ids"] = tf.where(mask, tf.range(rows)[:, tf.newaxis], -1)
    out["example_starts"] = tf.range(rows) * length
    return out


def pack_batch(features, labels, static_shapes=True):
    """Packs a training batch of `(features, labels)`; labels stay as they are.

    Args:
        features: as for `pack`.
        labels: per-example labels, in batch order.
        static_shapes: round the row count up to `row_multiple(batch)` so that
            compiled (XLA) steps see few shapes. Without XLA a new shape costs
            only a trace, so exact row counts pad less.
    """
    batch = features["token_ids"].shape[0]
    length = features["token_ids"].shape[1]
    out = pack(features, multiple=row_multiple(batch) if static_shapes else 1)
    for key in PACKED_FEATURES:
        out[key] = tf.ensure_shape(out[key], [None, length])
    out["example_starts"] = tf.ensure_shape(out["example_starts"], [batch])
    return out, labels


def unpack(values, features):
    """Per-token outputs of packed rows back in the unpacked layout.

    Args:
        values: `[rows, length, ...]`, computed on `pack`ed features.
        features: those packed features.

    Returns:
        `[batch, length, ...]`: example i's tokens in row i from column 0,
        in their order, and zeros where the unpacked batch had padding.
    """
    length = tf.shape(values)[1]
    flat = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], 0))
    starts = features["example_starts"]
    num_examples = tf.shape(starts)[0]
    ids = tf.reshape(features["example_ids"], [-1])
    ids = tf.where(ids < 0, num_examples, ids)  # padding to a dropped segment
    lengths = tf.math.unsorted_segment_sum(tf.ones_like(ids), ids, num_examples + 1)[:-1]
    column = tf.range(length)[tf.newaxis, :]
    valid = column < lengths[:, tf.newaxis]
    index = tf.where(valid, starts[:, tf.newaxis] + column, 0)
    out = tf.gather(flat, index)
    valid = tf.reshape(valid, tf.concat([tf.shape(valid), tf.ones_like(tf.shape(values)[2:])], 0))
    return tf.where(valid, out, tf.zeros_like(out))


def example_lengths(features):
    """Tokens of each example in a batch (NumPy), packed or not."""
    if "example_ids" in features:
        ids = np.asarray(features["example_ids"]).ravel()
        return np.bincount(ids[ids >= 0])
    return np.asarray(features["padding_mask"]).sum(axis=1)
