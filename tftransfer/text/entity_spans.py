"""Turn per-word IOB2 tags into entity spans, in-graph.

The default reading is conlleval's, the same as `metrics.entity.report`: an
`I-X` that does not continue an `X` entity starts one. `strict=True` keeps
only spans that start with `B-X` (seqeval's strict IOB2 mode). Vectorised
with ragged ops so that it runs inside the exported serving graph; seqeval
does this in Python only.

Example:

>>> import tensorflow as tf
>>> from tftransfer.text import entity_spans
>>> labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
>>> tags = tf.ragged.constant([[1, 2, 0, 4]])
>>> scores = tf.ragged.constant([[0.9, 0.8, 0.99, 0.7]])
>>> spans = entity_spans.decode(tags, scores, labels)
>>> spans["first_word"].to_list(), spans["last_word"].to_list()
([[0, 3]], [[1, 3]])

`locate` then maps word spans to text and character offsets in the input.
"""

import tensorflow as tf

from tftransfer.data import tag_schemes, word_splitter


def _tables(labels):
    prefixes, types = [], []
    names = tag_schemes.entity_types([labels])
    for label in labels:
        prefix, kind = tag_schemes.split_tag(label)
        if prefix not in ("O", "B", "I"):
            raise ValueError(f"label `{label}` is not IOB2")
        prefixes.append(prefix)
        types.append(names.index(kind) if kind else -1)
    return prefixes, types, names


def decode(tag_ids, scores, labels, strict=False):
    """Finds the entities in tagged sentences.

    Args:
        tag_ids: ragged [batch, (words)] int ids into `labels`.
        scores: ragged [batch, (words)] float, the score of each word's tag.
        labels: the IOB2 tag vocabulary.
        strict: keep only spans that start with `B-`.

    Returns:
        A dict of ragged [batch, (entities)] tensors: `first_word`,
        `last_word` (word indices in the sentence, inclusive), `type`
        (strings) and `score` (mean of the words' scores).
    """
    prefixes, types, names = _tables(labels)
    tags = tf.cast(tag_ids.flat_values, tf.int32)
    prefix = tf.gather(tf.constant(prefixes), tags)
    kind = tf.gather(tf.constant(types, tf.int32), tags)
    word = tf.ragged.range(tag_ids.row_lengths()).flat_values
    sentence = tag_ids.value_rowids()

    inside = tf.not_equal(prefix, "O")
    at_sentence_start = tf.equal(word, 0)
    previous_inside = tf.concat([[False], inside[:-1]], axis=0)
    previous_kind = tf.concat([[-1], kind[:-1]], axis=0)
    starts = inside & (
        tf.equal(prefix, "B")
        | at_sentence_start
        | ~previous_inside
        | tf.not_equal(previous_kind, kind)
    )
    entity = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    count = tf.reduce_sum(tf.cast(starts, tf.int64))
    member = tf.boolean_mask(entity, inside)
    last = tf.math.unsorted_segment_max(tf.boolean_mask(word, inside), member, count)
    score = tf.math.unsorted_segment_mean(
        tf.cast(tf.boolean_mask(scores.flat_values, inside), tf.float32), member, count
    )
    first = tf.boolean_mask(word, starts)
    entity_sentence = tf.boolean_mask(sentence, starts)
    entity_kind = tf.boolean_mask(kind, starts)
    keep = tf.ones_like(first, tf.bool)
    if strict:
        keep = tf.equal(tf.boolean_mask(prefix, starts), "B")
    type_names = tf.constant(names or [""], tf.string)

    def ragged(values):
        return tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(values, keep),
            tf.boolean_mask(entity_sentence, keep),
            nrows=tag_ids.nrows(),
        )

    return {
        "first_word": ragged(first),
        "last_word": ragged(last),
        "type": ragged(tf.gather(type_names, tf.maximum(entity_kind, 0))),
        "score": ragged(score),
    }


def locate(text, word_starts, word_ends, spans):
    """Entity text and character offsets, padded to the most entities.

    Args:
        text: [batch] the original strings.
        word_starts, word_ends: ragged [batch, (words)] UTF-8 byte offsets of
            the words (`word_splitter.split`).
        spans: the output of `decode` on those words.

    Returns:
        Dense [batch, max entities] `entity_text`, `entity_type`,
        `entity_start`, `entity_end` (character offsets, end exclusive, so
        `text[start:end] == entity_text` in Python), `entity_score`, and
        [batch] `num_entities`. Padding is "", -1 and 0.
    """
    rows = spans["first_word"].value_rowids()
    row_start = tf.gather(word_starts.row_starts(), rows)
    byte_start = tf.gather(word_starts.flat_values, row_start + spans["first_word"].flat_values)
    byte_end = tf.gather(word_ends.flat_values, row_start + spans["last_word"].flat_values)
    entity_text = tf.strings.substr(
        tf.gather(text, rows), byte_start, byte_end - byte_start, unit="BYTE"
    )
    like = spans["first_word"].with_flat_values
    char_start = word_splitter.to_char_offsets(text, like(byte_start))
    char_end = word_splitter.to_char_offsets(text, like(byte_end))
    return {
        "entity_text": like(entity_text).to_tensor(""),
        "entity_type": spans["type"].to_tensor(""),
        "entity_start": tf.cast(char_start.to_tensor(-1), tf.int32),
        "entity_end": tf.cast(char_end.to_tensor(-1), tf.int32),
        "entity_score": spans["score"].to_tensor(0.0),
        "num_entities": tf.cast(spans["first_word"].row_lengths(), tf.int32),
    }
