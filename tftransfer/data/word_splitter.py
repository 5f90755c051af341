"""Split raw text into words with character offsets, in-graph.

Words are what BERT's basic tokenizer produces: runs split on whitespace and
control characters, with each punctuation mark (and CJK character) a word of
its own. It uses keras-hub's own split patterns, so a word here is never cut
again by the WordPiece tokenizer's pre-splitting. tf-text reports offsets in
UTF-8 bytes; users index strings by character, so `to_char_offsets` converts.

Example:

>>> import tensorflow as tf
>>> from tftransfer.data import word_splitter
>>> text = tf.constant(["Zürich,  2024"])
>>> words, starts, ends = word_splitter.split(text)
>>> words.to_list()
[[b'Z\\xc3\\xbcrich', b',', b'2024']]
>>> word_splitter.to_char_offsets(text, starts).to_list()
[[0, 6, 9]]
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tftransfer import compat


def split(text, split_on_cjk=True):
    """Splits strings into words.

    Args:
        text: [batch] strings.
        split_on_cjk: also make each CJK character a word (as BERT does).

    Returns:
        `(words, starts, ends)`: ragged [batch, (words)] strings and their
        UTF-8 byte offsets (end exclusive).
    """
    delimiters, keep = compat.wordpiece_split_patterns(split_on_cjk)
    return tf_text.regex_split_with_offsets(
        text, delim_regex_pattern=delimiters, keep_delim_regex_pattern=keep
    )


def to_char_offsets(text, byte_offsets):
    """Converts UTF-8 byte offsets into character (code point) offsets.

    Args:
        text: [batch] strings.
        byte_offsets: ragged [batch, (n)] int byte offsets into each string,
            each at a character boundary or at the end of the string.

    Returns:
        Ragged [batch, (n)] int64 character offsets (Python `str` indices).
    """
    _, char_starts = tf.strings.unicode_decode_with_offsets(
        text, "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    big = tf.constant(2**62, tf.int64)
    # The number of characters that start before a byte offset is its
    # character index; searchsorted counts them per row.
    starts = tf.cast(char_starts, tf.int64).to_tensor(default_value=big)
    queries = tf.cast(byte_offsets, tf.int64)
    dense = queries.to_tensor(default_value=0)
    index = tf.searchsorted(starts, dense, side="left", out_type=tf.int64)
    return tf.RaggedTensor.from_tensor(index, lengths=queries.row_lengths())


def to_char_offset(text, byte_offset):
    """`to_char_offsets` for one `[batch]` byte offset per string."""
    one = tf.ones_like(byte_offset, tf.int64)
    ragged = tf.RaggedTensor.from_row_lengths(byte_offset, one)
    return to_char_offsets(text, ragged).flat_values
