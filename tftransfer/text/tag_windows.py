"""Sentences of words as tagging windows: framed subword features and per-subword labels.

A sentence (or document) longer than the model's sequence length becomes
overlapping windows (`data.word_windows`), each framed as `[CLS] subwords
[SEP]`. A word's tag goes on its first subword; its other subwords get
`IGNORE` (or, with `continuation`, the tag a continuation carries: `B-X` ->
`I-X`). With casing features, each subword also carries its word's casing
class, computed from the original word, so serving sees it too.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.text.tag_windows import TagWindows
>>> from tftransfer.text.word_tokenizer import WordTokenizer
>>> _, tokenizer = backbones.load("default")
>>> tagging = TagWindows(WordTokenizer(tokenizer), window=2, stride=1)
>>> words = tf.ragged.constant([["alice", "visited", "zurich"]])
>>> windows = tagging.split(words)  # 3 subwords, windows of 2 every 1
>>> tagging.features(windows, words)["token_ids"].shape
TensorShape([2, 4])
>>> tagging.labels(windows, tf.ragged.constant([[1, 0, 3]]), length=4).numpy().tolist()
[[-1, 1, 0, -1], [-1, 0, 3, -1]]
"""

import tensorflow as tf

from tftransfer.data import tag_schemes, word_casing
from tftransfer.text.word_tokenizer import frame

#: label of positions the loss ignores (special tokens, later subwords).
IGNORE = -1


def continuation_table(labels):
    """`[K]` int32: the tag id a continuation subword of each tag gets (B-X -> I-X)."""
    index = {name: i for i, name in enumerate(labels)}
    table = []
    for i, label in enumerate(labels):
        prefix, kind = tag_schemes.split_tag(label)
        table.append(index.get(f"I-{kind}", i) if prefix == "B" else i)
    return tf.constant(table, tf.int32)


class TagWindows:
    """Windows of `window` subwords every `stride`, framed for a BERT-style backbone.

    Args:
        words: a `WordTokenizer` for the backbone's tokenizer.
        window: subwords per window (the sequence length less [CLS] and [SEP]).
        stride: subwords between the starts of consecutive windows.
        casing: add `casing_ids`, each subword's word casing class.
    """

    def __init__(self, words, window, stride, casing=False):
        self.words = words
        self.window = window
        self.stride = stride
        self.casing = casing

    def split(self, words, pieces=None):
        """Ragged `[batch, (words)]` strings (or their `pieces`) -> `word_windows.Windows`."""
        return self.words.windows(words, self.window, self.stride, pieces=pieces)

    @staticmethod
    def global_words(windows):
        """Index of each window subword's word among the batch's words."""
        sentence = tf.gather(windows.sentence, windows.subword_ids.value_rowids())
        return tf.gather(windows.word_row_starts, sentence) + windows.word.flat_values

    def features(self, windows, words, length=None):
        """Backbone features of the windows (plus `casing_ids`), padded to `length`."""
        ids = windows.subword_ids
        features = self.words.frame_features([ids], length)
        if self.casing:
            casing = tf.gather(word_casing.classify(words.flat_values), self.global_words(windows))
            features["casing_ids"] = frame([ids.with_flat_values(casing)], 0, 0, 0, length)
        return features

    def labels(self, windows, tags, length, continuation=None):
        """`[windows, length]` tag ids per position; `IGNORE` where the loss skips.

        Args:
            windows: from `split`.
            tags: ragged `[batch, (words)]` tag ids.
            length: the padded width.
            continuation: a `continuation_table` to label every subword;
                None labels first subwords only.
        """
        word_tag = tf.gather(tf.cast(tags.flat_values, tf.int32), self.global_words(windows))
        if continuation is not None:
            rest = tf.gather(continuation, word_tag)
        else:
            rest = tf.fill(tf.shape(word_tag), IGNORE)
        first = windows.first.flat_values
        labels = windows.subword_ids.with_flat_values(tf.where(first, word_tag, rest))
        return frame([labels], IGNORE, IGNORE, IGNORE, length)
