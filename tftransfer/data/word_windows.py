"""Split word-tokenized sentences into overlapping subword windows, in-graph.

A sentence longer than the model's sequence length is cut into windows of
`window` subwords that start every `stride` subwords. A subword can then sit
in several windows; it is *owned* by the one where it has the most context on
its shorter side (ties go to the earlier window), as BERT's SQuAD code picks
the "max context" window. Each word is predicted exactly once: from the
window that owns its first subword.

Everything is TensorFlow ops on ragged tensors, so `tf.data` training, the
evaluation loop and the exported serving graph share this one implementation.
keras-hub's `MultiSegmentPacker` truncates instead of windowing, and tf-text
has no word-aligned windowing op, hence this module.

Example:

>>> import tensorflow as tf
>>> from tftransfer.data import word_windows
>>> pieces = tf.ragged.constant([[[7], [8, 9], [10]]])  # one sentence, 3 words
>>> w = word_windows.split(pieces, window=2, stride=1)
>>> w.subword_ids.to_list()
[[7, 8], [8, 9], [9, 10]]
>>> w.owner_word.to_list()
[[0, 1], [-1, -1], [-1, 2]]
"""

import math
from typing import NamedTuple

import tensorflow as tf


class Windows(NamedTuple):
    """Windows of a batch of sentences.

    Attributes:
        subword_ids: ragged [windows, (subwords)] token ids.
        sentence: [windows] index of each window's sentence in the batch.
        word: ragged [windows, (subwords)] index of each subword's word in
            its sentence.
        first: ragged [windows, (subwords)] whether the subword is its word's
            first.
        last: ragged [windows, (subwords)] whether it is its word's last.
        owned: ragged [windows, (subwords)] whether this window is the one
            with the most context for the subword.
        owner_word: ragged [windows, (subwords)] the word index where this
            window owns the word's first subword, else -1.
        word_row_starts: [batch] offset of each sentence's first word in the
            flattened words of the batch.
    """

    subword_ids: tf.RaggedTensor
    sentence: tf.Tensor
    word: tf.RaggedTensor
    first: tf.RaggedTensor
    last: tf.RaggedTensor
    owned: tf.RaggedTensor
    owner_word: tf.RaggedTensor
    word_row_starts: tf.Tensor


def fill_empty(pieces, fill_id):
    """Gives `[fill_id]` to rows with no subwords (e.g. a lone control char).

    Args:
        pieces: ragged [words, (subwords)] int tensor.
        fill_id: id to use, normally the tokenizer's unknown token.
    """
    empty = tf.cast(tf.equal(pieces.row_lengths(), 0), tf.int64)
    fill = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(empty)], tf.cast(fill_id, pieces.dtype)), empty
    )
    # Row-wise concatenation appends the fill only where the row was empty.
    return tf.concat([pieces, fill], axis=1)


def split(pieces, window, stride, max_window=None):
    """Cuts each sentence's subwords into overlapping windows.

    Args:
        pieces: ragged [batch, (words), (subwords)] token ids; every word
            must have at least one subword (see `fill_empty`).
        window: subwords per window (special tokens not included): an int,
            or a [batch] int tensor of per-sentence sizes, each >= stride
            (e.g. what a question leaves of the sequence in QA).
        stride: subwords between the starts of consecutive windows,
            1 <= stride <= window.
        max_window: with a tensor `window`, an upper bound of its values.

    Returns:
        `Windows`, sentences in batch order and windows in sentence order.
    """
    max_window = _max_window(window, stride, max_window)
    subword_word, subword_first, subword_last = _word_positions(pieces)
    layout = _layout(pieces, window, stride)
    owned = _owned(layout, stride, max_window)
    index = layout.index
    word = tf.gather(subword_word, index.flat_values)
    first = tf.gather(subword_first, index.flat_values)
    owner = tf.where(owned & first, word, -1)

    def like(values):
        return index.with_flat_values(values)

    return Windows(
        subword_ids=like(tf.gather(pieces.flat_values, index.flat_values)),
        sentence=layout.sentence,
        word=like(word),
        first=like(first),
        last=like(tf.gather(subword_last, index.flat_values)),
        owned=like(owned),
        owner_word=like(owner),
        word_row_starts=pieces.row_starts(),
    )


def _max_window(window, stride, max_window):
    """The largest window size, checking `split`'s arguments."""
    if isinstance(window, int):
        if not 1 <= stride <= window:
            raise ValueError(f"need 1 <= stride <= window, got stride {stride}, window {window}")
        return window
    if max_window is None:
        raise ValueError("a per-sentence `window` needs a static `max_window`")
    return max_window


def _word_positions(pieces):
    """Per subword of the batch, flat: its word's index in the sentence, is it first, is it last."""
    subwords_per_word = pieces.values.row_lengths()
    word_in_sentence = tf.ragged.range(pieces.row_lengths()).flat_values
    subword_word = tf.repeat(word_in_sentence, subwords_per_word)
    position_in_word = tf.ragged.range(subwords_per_word).flat_values
    subword_first = tf.equal(position_in_word, 0)
    subword_last = tf.equal(position_in_word, tf.repeat(subwords_per_word, subwords_per_word) - 1)
    return subword_word, subword_first, subword_last


class _Layout(NamedTuple):
    """Where the windows are: the sizes per sentence, the rest per window."""

    window: tf.Tensor  # [batch] window size of each sentence
    num_windows: tf.Tensor  # [batch]
    sentence: tf.Tensor  # [windows] the window's sentence
    k: tf.Tensor  # [windows] the window's number in its sentence
    length: tf.Tensor  # [windows] its sentence's length in subwords
    offset: tf.Tensor  # [windows] where its sentence starts in the batch's flat subwords
    index: tf.RaggedTensor  # [windows, (subwords)] into the batch's flat subwords


def _layout(pieces, window, stride):
    """Windows of `window` subwords every `stride`, the last one cut at the sentence's end."""
    sentence_length = pieces.merge_dims(1, 2).row_lengths()
    sentence_start = tf.cumsum(sentence_length, exclusive=True)
    window = tf.broadcast_to(tf.cast(window, tf.int64), tf.shape(sentence_length))
    stride_t = tf.constant(stride, tf.int64)
    extra = tf.maximum(sentence_length - window, 0)
    num_windows = 1 + (extra + stride_t - 1) // stride_t
    sentence = tf.repeat(tf.range(pieces.nrows()), num_windows)
    k = tf.ragged.range(num_windows).flat_values
    length = tf.gather(sentence_length, sentence)
    start = k * stride_t
    end = tf.minimum(start + tf.gather(window, sentence), length)
    offset = tf.gather(sentence_start, sentence)
    index = tf.ragged.range(offset + start, offset + end)
    return _Layout(window, num_windows, sentence, k, length, offset, index)


def _owned(layout, stride, max_window):
    """Per subword of each window, flat: whether no other window gives it more context."""
    index = layout.index
    stride_t = tf.constant(stride, tf.int64)
    # p is the position in the sentence.
    p = index.flat_values - tf.gather(layout.offset, index.value_rowids())
    rows = index.value_rowids()
    k_of = tf.gather(layout.k, rows)
    length_of = tf.gather(layout.length, rows)
    windows_of = tf.gather(layout.num_windows, tf.gather(layout.sentence, rows))
    window_of = tf.gather(layout.window, tf.gather(layout.sentence, rows))

    def context(kk):
        s = kk * stride_t
        e = tf.minimum(s + window_of, length_of)
        inside = (kk >= 0) & (kk < windows_of) & (s <= p) & (p < e)
        return inside, tf.minimum(p - s, e - 1 - p)

    _, mine = context(k_of)
    owned = tf.ones_like(p, tf.bool)
    # A position lies in at most ceil(window / stride) windows: compare with each.
    reach = math.ceil(max_window / stride)
    for d in range(-reach, reach + 1):
        if d == 0:
            continue
        inside, theirs = context(k_of + d)
        beats = (mine > theirs) | ((mine == theirs) & (d > 0))
        owned &= ~inside | beats
    return owned


def merge(values, windows, num_sentences_words):
    """Gathers per-word values from the windows that own each word.

    Args:
        values: [windows, length, ...] per-subword values, aligned with the
            windows' subwords (without special tokens).
        windows: the `Windows` the values were computed on.
        num_sentences_words: row splits [batch + 1] of the words.

    Returns:
        Ragged [batch, (words), ...] values, one per word.
    """
    owner = windows.owner_word.to_tensor(default_value=-1)
    values = values[:, : tf.shape(owner)[1]]
    mask = owner >= 0
    window_ids = tf.broadcast_to(
        tf.expand_dims(tf.range(tf.shape(owner, out_type=tf.int64)[0]), 1),
        tf.shape(owner, tf.int64),
    )
    sentence = tf.gather(windows.sentence, tf.boolean_mask(window_ids, mask))
    global_word = tf.gather(windows.word_row_starts, sentence) + tf.boolean_mask(owner, mask)
    total_words = num_sentences_words[-1]
    owned_values = tf.boolean_mask(values, mask)
    shape = tf.concat(
        [tf.reshape(total_words, [1]), tf.shape(owned_values, out_type=tf.int64)[1:]], axis=0
    )
    per_word = tf.scatter_nd(tf.expand_dims(global_word, 1), owned_values, shape)
    return tf.RaggedTensor.from_row_splits(per_word, num_sentences_words)
