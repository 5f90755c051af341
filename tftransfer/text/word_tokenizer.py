"""A keras-hub tokenizer seen as graph ops on lists of words, with its special ids.

Token classification and question answering tokenize words one by one (to
keep word boundaries and offsets), cut them into windows and frame each
window as `[CLS] segment [SEP] (segment [SEP])`, so both need the same few
things from the backbone's tokenizer: `WordTokenizer.windows` and `frame`.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.text.word_tokenizer import WordTokenizer
>>> _, tokenizer = backbones.load("default")
>>> words = WordTokenizer(tokenizer)
>>> words.pieces(tf.constant(["hello", "", "zurich"])).to_list()  # "" is [UNK]
[[7592], [100], [10204]]
>>> features = words.frame_features([tf.ragged.constant([[7592], [10204, 7592]])])
>>> features["token_ids"].numpy().tolist()  # [CLS] ... [SEP] [PAD]
[[101, 7592, 102, 0], [101, 10204, 7592, 102]]
"""

import dataclasses

import tensorflow as tf

from tftransfer.data import word_windows


def token_id(tokenizer, *names):
    """The first of the tokenizer's `names` attributes that is set.

    keras-hub tokenizers name their special tokens by family (BERT's
    `cls_token_id`, GPT-2's `start_token_id`).
    """
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return value
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has none of {names}")


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """The ids that frame and pad a sequence: `[CLS]`, `[SEP]`, `[PAD]` in BERT."""

    start: int
    end: int
    pad: int

    @classmethod
    def of(cls, tokenizer):
        return cls(
            start=token_id(tokenizer, "cls_token_id", "start_token_id"),
            end=token_id(tokenizer, "sep_token_id", "end_token_id"),
            pad=token_id(tokenizer, "pad_token_id"),
        )


def frame(segments, start, end, pad, length=None):
    """`start seg0 end seg1 end ...` per row, padded to a dense tensor.

    Args:
        segments: ragged `[rows, (n)]` tensors, one per segment.
        start: the value put before the first segment.
        end: the value put after each segment, or a list of one per segment.
        pad: the padding value.
        length: the padded width; None = the longest row.
    """
    rows = segments[0].nrows()

    def column(value):
        return tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.cast(value, segments[0].dtype)))

    ends = end if isinstance(end, (list, tuple)) else [end] * len(segments)
    pieces = [column(start)]
    for segment, value in zip(segments, ends):
        pieces += [segment, column(value)]
    return tf.concat(pieces, axis=1).to_tensor(pad, shape=[None, length])


class WordTokenizer:
    """Subword ids of words, in-graph, and the ids that frame a sequence.

    Args:
        tokenizer: a keras-hub tokenizer.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = SpecialIds.of(tokenizer)
        oov = getattr(tokenizer, "oov_token", None)
        self.unk_id = tokenizer.token_to_id(oov) if oov else self.special.pad
        self.split_on_cjk = getattr(tokenizer, "split_on_cjk", True)
        lowercase = getattr(tokenizer, "bert_lowercase", getattr(tokenizer, "lowercase", False))
        self.lowercase = bool(lowercase)
        # keras-hub tokenizers return Python lists when called eagerly; in a
        # graph they return ragged tensors, which the windowing needs.
        self._tokenize = tf.function(
            lambda texts: tokenizer(texts),
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )

    def ids(self, texts):
        """[n] strings -> ragged [n, (subwords)] int32 ids."""
        ids = self._tokenize(texts)
        if not isinstance(ids, tf.RaggedTensor):  # a tokenizer with a fixed length
            ids = tf.RaggedTensor.from_tensor(ids, padding=self.special.pad)
        return tf.cast(ids, tf.int32)

    def pieces(self, words):
        """Like `ids`, but a word with no subword gets the unknown token."""
        return word_windows.fill_empty(self.ids(words), self.unk_id)

    def word_pieces(self, words):
        """Ragged `[batch, (words)]` strings -> ragged `[batch, (words), (subwords)]` ids."""
        return tf.RaggedTensor.from_row_splits(self.pieces(words.flat_values), words.row_splits)

    def windows(self, words, window, stride, max_window=None, pieces=None):
        """Ragged `[batch, (words)]` strings -> subword windows (`word_windows.split`).

        `pieces`: the words' `word_pieces` when already computed (evaluation
        tokenizes once per run).
        """
        if pieces is None:
            pieces = self.word_pieces(words)
        return word_windows.split(pieces, window, stride, max_window=max_window)

    def frame_features(self, segments, length=None):
        """Backbone features of `[CLS] seg0 [SEP] seg1 [SEP] ...` rows.

        Args:
            segments: ragged `[rows, (subwords)]` int32 ids, one per segment.
            length: the padded width; None = the longest row.

        Returns:
            `token_ids`, `segment_ids` (i for segment i and the `[SEP]` after
            it; 0 for `[CLS]`) and `padding_mask`, each `[rows, length]` int32.
        """
        ids = self.special
        return {
            "token_ids": frame(segments, ids.start, ids.end, ids.pad, length),
            "segment_ids": frame(
                [tf.ones_like(s) * i for i, s in enumerate(segments)],
                0,
                list(range(len(segments))),
                0,
                length,
            ),
            "padding_mask": frame([tf.ones_like(s) for s in segments], 1, 1, 0, length),
        }
