"""Answer spans from start/end logits over context windows, in-graph.

For each window: every (start, end) pair inside the context within
`max_answer_length` subwords whose start the window owns; per question, the
window with the best pair; then the words of that span cut from the original
context with character offsets. Graph ops only, for evaluation and the
exported serving function alike.

Example:

>>> import tensorflow as tf
>>> from tftransfer.text import span_answers
>>> best = tf.constant([1.0, 3.0, 2.0])  # best span score of three windows
>>> logits = tf.zeros([3, 4, 2])
>>> question_best, winner, null = span_answers.best_windows(
...     best, logits, tf.constant([0, 0, 1], tf.int64), batch_size=2)
>>> question_best.numpy().tolist(), winner.numpy().tolist()
([3.0, 2.0], [1, 2])
"""

import tensorflow as tf

from tftransfer.data import word_splitter

# Scores of impossible spans. Finite: segment max/min kernels start from the
# lowest finite float, so a segment of -inf values would not compare equal.
NEG_INF = -1e30


def window_spans(logits, offset, windows, max_answer_length):
    """The best span of each window: score, start and end subword, grid shape.

    A span starts in a subword this window owns (has the most context for),
    ends inside the context, and is at most `max_answer_length` subwords.
    """
    # Context logits in window coordinates, one spare column so that a
    # batch of empty contexts still has a (never valid) position.
    width = tf.reduce_max(tf.concat([windows.subword_ids.row_lengths(), [0]], 0)) + 1
    local = tf.range(width)[tf.newaxis, :]
    index = tf.minimum(offset[:, tf.newaxis] + local, tf.cast(tf.shape(logits)[1] - 1, tf.int64))
    start_logits = tf.gather(logits[..., 0], index, batch_dims=1)
    end_logits = tf.gather(logits[..., 1], index, batch_dims=1)
    shape = tf.stack([tf.shape(index, out_type=tf.int64)[0], width])
    valid = tf.ones_like(windows.subword_ids, tf.bool).to_tensor(False, shape=shape)
    owned = windows.owned.to_tensor(False, shape=shape)
    start_scores = tf.where(valid & owned, start_logits, NEG_INF)
    end_scores = tf.where(valid, end_logits, NEG_INF)
    pairs = start_scores[:, :, tf.newaxis] + end_scores[:, tf.newaxis, :]
    span = tf.range(width)[tf.newaxis, :] - tf.range(width)[:, tf.newaxis]
    band = (span >= 0) & (span < max_answer_length)
    pairs = tf.where(band[tf.newaxis], pairs, NEG_INF)
    flat = tf.reshape(pairs, [tf.shape(pairs)[0], -1])
    best = tf.reduce_max(flat, axis=1)
    best_index = tf.argmax(flat, axis=1)
    return best, best_index // width, best_index % width, shape


def best_windows(best, logits, sentence, batch_size):
    """Per question: its best span score, the window holding it, the no-answer score.

    The first window wins ties; the no-answer score is the smallest [CLS]
    score over the question's windows (as in BERT).
    """
    window_id = tf.range(tf.shape(best, out_type=tf.int64)[0])
    question_best = tf.math.unsorted_segment_max(best, sentence, batch_size)
    winner = tf.math.unsorted_segment_min(
        tf.where(best >= tf.gather(question_best, sentence), window_id, 2**40),
        sentence,
        batch_size,
    )
    null = tf.math.unsorted_segment_min(logits[:, 0, 0] + logits[:, 0, 1], sentence, batch_size)
    return question_best, winner, null


def cut(context, offsets, first_word, last_word, has_span):
    """The text from `first_word` to `last_word` of each context, with character offsets."""
    starts, ends = offsets
    row_start = starts.row_starts()
    total = tf.shape(starts.flat_values, out_type=tf.int64)[0]
    safe = tf.maximum(total - 1, 0)
    byte_start = tf.gather(
        tf.concat([starts.flat_values, [0]], 0), tf.minimum(row_start + first_word, safe)
    )
    byte_end = tf.gather(
        tf.concat([ends.flat_values, [0]], 0), tf.minimum(row_start + last_word, safe)
    )
    byte_start = tf.where(has_span, byte_start, 0)
    byte_end = tf.where(has_span, byte_end, 0)
    text = tf.strings.substr(context, byte_start, byte_end - byte_start, unit="BYTE")
    char_start = word_splitter.to_char_offset(context, byte_start)
    char_end = word_splitter.to_char_offset(context, byte_end)
    return text, char_start, char_end
