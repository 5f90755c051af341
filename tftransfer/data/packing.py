"""Sequence packing: the examples of a training batch share rows.

A batch of `batch_size` encoded rows (each `[CLS] ... [SEP]` then padding,
`length` wide) is packed first-fit-decreasing into as few rows of `length`
as hold them; the row count is rounded up to a multiple of
`row_multiple(batch_size)` so compiled steps see at most `MAX_SHAPES` shapes.
Examples keep their batch order: a packed model returns one output per
example, in that order, so the task's loss and the batch's size in examples
are unchanged (an optimizer step sees the same examples as without packing).

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

```python
features, labels = packing.pack_batch(features, labels)
```
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

    Args:
        lengths: 1-D integer array, each at most `capacity`.
        capacity: the row length.

    Returns:
        `(row, column, num_rows)`: per-length row index and start column, and
        the number of rows used.
    """
    row = np.zeros(len(lengths), np.int32)
    column = np.zeros(len(lengths), np.int32)
    used = []  # tokens already placed in each row
    for i in np.argsort(-np.asarray(lengths), kind="stable"):
        n = int(lengths[i])
        if n > capacity:
            raise ValueError(f"an example of {n} tokens does not fit rows of {capacity}")
        r = next((r for r, u in enumerate(used) if u + n <= capacity), len(used))
        if r == len(used):
            used.append(0)
        row[i], column[i] = r, used[r]
        used[r] += n
    return row, column, len(used)


def _pack(token_ids, segment_ids, padding_mask):
    batch, length = token_ids.shape
    lengths = padding_mask.astype(bool).sum(axis=1)
    row, column, count = first_fit_decreasing(lengths, length)
    multiple = row_multiple(batch)
    rows = -(-count // multiple) * multiple
    out = {k: np.zeros((rows, length), np.int32) for k in PACKED_FEATURES}
    out["example_ids"][:] = -1
    for i in range(batch):
        n, r, c = lengths[i], row[i], column[i]
        # Rows from the BERT packer hold their tokens first, then padding.
        out["token_ids"][r, c : c + n] = token_ids[i, :n]
        out["segment_ids"][r, c : c + n] = segment_ids[i, :n]
        out["padding_mask"][r, c : c + n] = 1
        out["position_ids"][r, c : c + n] = np.arange(n)
        out["example_ids"][r, c : c + n] = i
    starts = (row * length + column).astype(np.int32)
    return tuple(out[k] for k in PACKED_FEATURES) + (starts,)


def pack_batch(features, labels):
    """Packs a batch of `(features, labels)`; labels stay as they are.

    Args:
        features: dict with `token_ids`, `segment_ids` and `padding_mask`,
            each `[batch, length]`, tokens before padding in every row.
        labels: per-example labels, in batch order.
    """
    length = features["token_ids"].shape[1]
    batch = features["token_ids"].shape[0]
    packed = tf.numpy_function(
        _pack,
        [features["token_ids"], features["segment_ids"], features["padding_mask"]],
        [tf.int32] * (len(PACKED_FEATURES) + 1),
        stateful=False,
    )
    out = {}
    for key, value in zip(PACKED_FEATURES, packed[:-1]):
        value.set_shape([None, length])
        out[key] = value
    out["example_starts"] = tf.ensure_shape(packed[-1], [batch])
    return out, labels


def example_lengths(features):
    """Tokens of each example in a batch (NumPy), packed or not."""
    if "example_ids" in features:
        ids = np.asarray(features["example_ids"]).ravel()
        return np.bincount(ids[ids >= 0])
    return np.asarray(features["padding_mask"]).sum(axis=1)
