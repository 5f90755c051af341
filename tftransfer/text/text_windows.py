"""Texts longer than the model's window: overlapping windows, or head/tail truncation.

For classification and regression of long documents: each text's tokens are
cut into windows of `width` tokens starting every `stride` tokens, the last
window ending at the text's last token (unless `max_windows` stops it
first), so every token is in at least one window. The model classifies each
window and aggregates per document (`WindowedClassifier`). Truncation keeps
one window's worth instead: the head, the tail, or both (Sun et al., 2019,
"How to Fine-Tune BERT for Text Classification?", found head + tail best on
long reviews).

Graph ops on ragged tensors, so that `tf.data`, evaluation and the exported
serving function share them. `data.word_windows` windows whole words and
tracks which window owns each word (what tagging needs); here tokens are cut
anywhere and nothing is owned, hence this smaller module.

Example:

>>> import tensorflow as tf
>>> from tftransfer.text import text_windows
>>> tokens = tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7], [8, 9]])
>>> windows, document = text_windows.split(tokens, width=4, stride=2, max_windows=8)
>>> windows.to_list(), document.numpy().tolist()
([[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7], [8, 9]], [0, 0, 0, 1])
>>> text_windows.truncate(tokens, budget=4, mode="head_tail").to_list()
[[1, 5, 6, 7], [8, 9]]
"""

import tensorflow as tf

TRUNCATION = ("head", "tail", "head_tail")


def _per_row(value, rows):
    return tf.broadcast_to(tf.cast(value, tf.int64), [rows])


def split(tokens, width, stride, max_windows):
    """Cuts each row of `tokens` into overlapping windows.

    Args:
        tokens: ragged `[texts, (tokens)]`.
        width: tokens per window: an int or a `[texts]` tensor (what a
            sentence pair's second text leaves of the sequence).
        stride: tokens between window starts (int or `[texts]`), at most
            `width`.
        max_windows: windows per text at most; tokens after the last are
            dropped.

    Returns:
        `(windows, document)`: ragged `[windows, (tokens)]` in text order,
        and `[windows]` int64, the text each window comes from. An empty
        text gets one empty window.
    """
    lengths = tokens.row_lengths()
    rows = tf.shape(lengths, out_type=tf.int64)[0]
    width = _per_row(width, rows)
    stride = tf.minimum(_per_row(stride, rows), width)
    extra = tf.maximum(lengths - width, 0)
    count = tf.minimum(1 + (extra + stride - 1) // stride, max_windows)
    document = tf.repeat(tf.range(rows), count)
    k = tf.ragged.range(count).flat_values
    start = k * tf.gather(stride, document)
    end = tf.minimum(start + tf.gather(width, document), tf.gather(lengths, document))
    offset = tf.gather(tokens.row_starts(), document)
    index = tf.ragged.range(offset + start, offset + end)
    return tf.gather(tokens.flat_values, index), document


def truncate(tokens, budget, mode):
    """Keeps at most `budget` tokens of each row: its head, its tail, or both.

    Args:
        tokens: ragged `[texts, (tokens)]`.
        budget: tokens to keep (int or `[texts]` tensor).
        mode: `head`, `tail`, or `head_tail`: the first quarter of the
            budget from the head and the rest from the tail (Sun et al.'s
            128 + 382 of 510).
    """
    if mode not in TRUNCATION:
        raise ValueError(f"truncation must be one of {TRUNCATION}, got {mode!r}")
    lengths = tokens.row_lengths()
    budget = _per_row(budget, tf.shape(lengths, out_type=tf.int64)[0])
    head = {"head": budget, "tail": tf.zeros_like(budget), "head_tail": budget // 4}[mode]
    tail_from = tf.maximum(lengths - (budget - head), head)
    position = tf.ragged.range(lengths)
    # Ragged rows against per-row limits: repeat the limits per token.
    limit_head = position.with_flat_values(tf.repeat(head, lengths))
    limit_tail = position.with_flat_values(tf.repeat(tail_from, lengths))
    keep = (position < limit_head) | (position >= limit_tail)
    return tf.ragged.boolean_mask(tokens, keep)
