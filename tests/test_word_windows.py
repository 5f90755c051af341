import numpy as np
import pytest
import tensorflow as tf

from tftransfer.data import word_windows


def _pieces(sentences):
    """sentences: lists of subword counts per word -> ragged ids (id = 100*word + k)."""
    return tf.ragged.constant(
        [[[100 * w + k for k in range(n)] for w, n in enumerate(words)] for words in sentences],
        dtype=tf.int32,
        ragged_rank=2,
    )


@pytest.mark.parametrize("window,stride", [(4, 2), (4, 4), (5, 1), (3, 2), (8, 3)])
def test_every_word_is_owned_exactly_once(window, stride):
    rng = np.random.default_rng(window * 10 + stride)
    sentences = [list(rng.integers(1, 4, size=rng.integers(1, 12))) for _ in range(20)]
    sentences.append([6])  # one word longer than some windows
    w = word_windows.split(_pieces(sentences), window=window, stride=stride)
    ids = w.subword_ids.to_list()
    assert max(len(r) for r in ids) <= window
    owners = {}
    for row, sentence in zip(w.owner_word.to_list(), w.sentence.numpy()):
        for word in row:
            if word >= 0:
                owners.setdefault(int(sentence), []).append(word)
    for s, words in enumerate(sentences):
        assert sorted(owners[s]) == list(range(len(words))), (s, words)


def test_windows_cover_the_sentence_in_order():
    w = word_windows.split(_pieces([[2, 1, 3, 1, 2]]), window=4, stride=3)
    # 9 subwords: windows start at 0, 3, 6; the last one is short.
    assert w.subword_ids.to_list() == [
        [0, 1, 100, 200],
        [200, 201, 202, 300],
        [300, 400, 401],
    ]
    # Word 2 (subword 3) is last in window 0 and first in window 1: equal
    # context (0 on its short side), so the earlier window owns it. Word 4
    # (subword 7) is only in window 2.
    assert w.owner_word.to_list() == [[0, -1, 1, 2], [-1, -1, -1, 3], [-1, 4, -1]]


def test_owner_is_the_window_with_most_context():
    # 7 single-subword words, window 5, stride 2: word 3 (position 3) has
    # context min(3, 1) = 1 in window 0, min(1, 3) = 1 in window 1 (tie, earlier
    # wins); word 4 has min(4, 0) = 0 in window 0 and min(2, 2) = 2 in window 1.
    w = word_windows.split(_pieces([[1] * 7]), window=5, stride=2)
    assert w.owner_word.to_list() == [[0, 1, 2, 3, -1], [-1, -1, 4, 5, 6]]


def test_merge_returns_one_value_per_word_from_its_owner():
    sentences = [[1, 2, 1, 1, 3, 1], [1], [2, 2]]
    pieces = _pieces(sentences)
    w = word_windows.split(pieces, window=3, stride=2)
    values = tf.cast(w.subword_ids.to_tensor(-1), tf.float32)
    merged = word_windows.merge(values, w, pieces.row_splits)
    # A word's value is its first subword's id: 100 * word index.
    assert merged.to_list() == [[100.0 * i for i in range(len(s))] for s in sentences]


def test_fill_empty_gives_unknown_to_empty_words():
    filled = word_windows.fill_empty(tf.ragged.constant([[5], [], [6, 7], []]), 1)
    assert filled.to_list() == [[5], [1], [6, 7], [1]]


def test_runs_inside_tf_function():
    pieces = _pieces([[1, 2, 3, 1], [1]])
    eager = word_windows.split(pieces, 3, 2).owner_word.to_list()
    traced = tf.function(lambda p: word_windows.split(p, 3, 2).owner_word)(pieces)
    assert traced.to_list() == eager


def test_per_sentence_window_sizes_match_separate_calls():
    sentences = [[1, 2, 1, 1, 3, 1], [2, 2, 2, 1], [1]]
    sizes = [4, 3, 5]
    together = word_windows.split(
        _pieces(sentences), tf.constant(sizes), stride=2, max_window=max(sizes)
    )
    rows = together.sentence.numpy().tolist()
    for s, (words, size) in enumerate(zip(sentences, sizes)):
        alone = word_windows.split(_pieces([words]), size, stride=2)
        mine = [i for i, r in enumerate(rows) if r == s]
        assert [together.subword_ids.to_list()[i] for i in mine] == alone.subword_ids.to_list()
        assert [together.owner_word.to_list()[i] for i in mine] == alone.owner_word.to_list()
