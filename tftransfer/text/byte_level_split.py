r"""Byte-level BPE pre-tokenization in the graph, as Hugging Face `tokenizers` splits.

GPT-2's split pattern (and Llama 3's) ends in `\s+(?!\S)|\s+`: a run of
whitespace before text gives its last character to the text (" world"), or
keeps it alone ("\n" before "I"). RE2, the regex engine of TensorFlow and
tf-text, has no look-ahead, and keras-hub's in-graph tokenizer approximates
it (it reads "\n\nI" as "\n\n", "I" where the checkpoint reads "\n", "\n",
"I"). Here the look-ahead's effect is exact: a whitespace run of two or more
characters followed by text is cut before its last character, and the
pattern without the look-ahead (`\s+`) splits each part; the reference never
matches across that cut, so both give the same pieces. `\s` is spelled out
as Unicode's White_Space (RE2's `\s` is ASCII only).

Example:

>>> from tftransfer.text import byte_level_split
>>> [p.decode() for p in byte_level_split.split(["Dear John,\n\nI  am"])[0].numpy()]
['Dear', ' John', ',', '\n', '\n', 'I', ' ', ' am']
"""

import tensorflow as tf
import tensorflow_text as tf_text

_WS = r"\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
_S = f"[{_WS}]"
_OTHER = rf"[^{_WS}\p{{L}}\p{{N}}]"

#: GPT-2's `ByteLevel(use_regex=True)` pattern, look-ahead removed.
GPT2 = rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?{_OTHER}+|{_S}+"
#: Llama 3's `Split` pattern, look-ahead removed.
LLAMA3 = (
    rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{{1,3}}"
    rf"| ?{_OTHER}+[\r\n]*|{_S}*[\r\n]+|{_S}+"
)


def _cuts(pieces, newline_runs_whole):
    """`[pieces, (byte offsets)]`: before the last character of each whitespace run before text.

    With `\\s*[\\r\\n]+` ahead of the look-ahead (Llama 3), a run ending in a
    line break is matched whole: no cut.
    """
    runs, _, ends = tf_text.regex_split_with_offsets(pieces, _S + "+", _S + "+")
    flat, rows = runs.flat_values, runs.value_rowids()
    position = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(runs.row_splits, rows)
    followed = position < tf.gather(runs.row_lengths(), rows) - 1
    chars = tf.strings.length(flat, unit="UTF8_CHAR")
    last = tf.strings.substr(flat, chars - 1, tf.ones_like(chars), unit="UTF8_CHAR")
    cut = tf.strings.regex_full_match(flat, _S + "+") & followed & (chars >= 2)
    if newline_runs_whole:
        cut &= (last != "\n") & (last != "\r")
    at = ends.flat_values - tf.cast(tf.strings.length(last), tf.int64)
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(at, cut),
        tf.boolean_mask(rows, cut),
        nrows=tf.shape(pieces, out_type=tf.int64)[0],
    )


def _split_pieces(pieces, pattern):
    """`[pieces]` -> `[pieces, (pre-tokens)]`."""
    cuts = _cuts(pieces, newline_runs_whole=pattern == LLAMA3)
    ones = tf.ones_like(pieces, tf.int64)
    start = tf.RaggedTensor.from_row_lengths(tf.zeros_like(ones), ones)
    end = tf.RaggedTensor.from_row_lengths(tf.cast(tf.strings.length(pieces), tf.int64), ones)
    bounds = tf.concat([start, cuts, end], axis=1)
    begin, size = bounds[:, :-1], bounds[:, 1:] - bounds[:, :-1]
    parts = tf.strings.substr(
        tf.gather(pieces, begin.value_rowids()), begin.flat_values, size.flat_values
    )
    tokens = tf_text.regex_split(parts, pattern, pattern)
    return tf.RaggedTensor.from_row_lengths(tokens, begin.row_lengths()).merge_dims(1, 2)


def split(texts, pattern=GPT2, split_digits=False):
    """`[texts]` -> `[texts, (pre-tokens)]`, as the reference pre-tokenizer splits.

    Args:
        texts: a 1-D string tensor.
        pattern: `GPT2` or `LLAMA3` (or their names in `PATTERNS`).
        split_digits: `Digits(individual_digits=True)` first (SmolLM2): every
            digit its own piece, split no further.
    """
    pattern = PATTERNS.get(pattern, pattern)
    texts = tf.convert_to_tensor(texts)
    if split_digits:
        pieces = tf_text.regex_split(texts, r"\p{N}", r"\p{N}")
    else:
        pieces = tf.RaggedTensor.from_row_lengths(texts, tf.ones_like(texts, tf.int64))
    tokens = _split_pieces(pieces.flat_values, pattern)
    return tf.RaggedTensor.from_row_splits(
        tokens.flat_values, tf.gather(tokens.row_splits, pieces.row_splits)
    )


#: the patterns by the names `pre_tokenizers.settings` gives them.
PATTERNS = {"gpt2": GPT2, "llama3": LLAMA3}
