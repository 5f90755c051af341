r"""Valid UTF-8 out of byte-level token ids, in the graph.

A byte-level BPE model emits bytes, not characters: a generation cut by
`max_new_tokens` can end inside a character (`今天天气很好` is 3 bytes a
character), and a small or untrained model can emit bytes that form no
character at all. Clients that decode strictly fail on either. `complete`
drops an unfinished last character (the model had not written it yet) and
replaces invalid bytes elsewhere with U+FFFD, as a lenient decoder would.

Example:

>>> import tensorflow as tf
>>> cut = "好".encode()[:2]
>>> [t.decode() for t in complete(tf.constant([b"ok " + cut, b"a\xffb", "😀".encode()])).numpy()]
['ok ', 'a�b', '😀']
"""

import tensorflow as tf


def _expected_length(lead):
    """Bytes in the character a lead byte starts (1 for ASCII, 0 for a continuation byte)."""
    return tf.where(
        lead < 0x80,
        1,
        tf.where(lead >= 0xF0, 4, tf.where(lead >= 0xE0, 3, tf.where(lead >= 0xC0, 2, 0))),
    )


def drop_unfinished_end(texts):
    """`texts` without a last character that lacks its final bytes."""
    lengths = tf.strings.length(texts)
    tail_length = tf.minimum(lengths, 4)
    # The last 4 bytes, left-padded with ASCII to a fixed width.
    padding = tf.strings.substr(
        tf.fill(tf.shape(texts), "aaaa"), tf.zeros_like(tail_length), 4 - tail_length
    )
    tails = tf.strings.join([padding, tf.strings.substr(texts, lengths - tail_length, tail_length)])
    tail = tf.cast(tf.io.decode_raw(tails, tf.uint8), tf.int32)  # [texts, 4]
    starts = (tail & 0xC0) != 0x80
    # The last byte that starts a character, and how many bytes from the end it is.
    column = 3 - tf.argmax(tf.reverse(tf.cast(starts, tf.int32), [1]), axis=1, output_type=tf.int32)
    from_end = 4 - column
    lead = tf.gather(tail, column, batch_dims=1)
    unfinished = tf.reduce_any(starts, axis=1) & (_expected_length(lead) > from_end)
    keep = tf.where(unfinished, lengths - from_end, lengths)
    return tf.strings.substr(texts, tf.zeros_like(keep), keep)


def complete(texts):
    """Valid UTF-8: the unfinished last character dropped, other invalid bytes U+FFFD."""
    return tf.strings.unicode_transcode(
        drop_unfinished_end(texts), "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
