import pytest
import tensorflow as tf

from tftransfer.data import word_splitter
from tftransfer.metrics import entity as entity_metrics
from tftransfer.text import entity_spans

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _decode(tag_lists, strict=False):
    tags = tf.ragged.constant([[LABELS.index(t) for t in tags] for tags in tag_lists], tf.int32)
    scores = tf.ragged.map_flat_values(lambda t: tf.cast(t, tf.float32) * 0 + 0.5, tags)
    spans = entity_spans.decode(tags, scores, LABELS, strict)
    return [
        list(zip(types, firsts, lasts))
        for types, firsts, lasts in zip(
            [[t.decode() for t in row] for row in spans["type"].to_list()],
            spans["first_word"].to_list(),
            spans["last_word"].to_list(),
        )
    ]


SEQUENCES = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-LOC", "I-LOC"],
    ["O", "O"],
    [],
    ["B-LOC", "I-PER", "I-PER", "B-LOC", "B-LOC", "I-LOC"],
]


@pytest.mark.parametrize("strict", [False, True])
def test_spans_agree_with_seqeval(strict):
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.scheme import IOB2, Entities

    for tags, found in zip(SEQUENCES, _decode(SEQUENCES, strict)):
        if strict:
            expected = [(e.tag, e.start, e.end - 1) for e in Entities([tags], IOB2).entities[0]]
        else:
            expected = get_entities(tags)
        assert sorted(found) == sorted(expected), tags
    # and the report built on the same spans counts the same entities
    assert entity_metrics.report(SEQUENCES, SEQUENCES, strict=strict)["f1"] == 1.0


def _locate(texts, tag_lists):
    text = tf.constant(texts)
    words, starts, ends = word_splitter.split(text)
    tags = tf.ragged.constant([[LABELS.index(t) for t in tags] for tags in tag_lists], tf.int32)
    assert words.row_lengths().numpy().tolist() == [len(t) for t in tag_lists]
    scores = tf.ragged.map_flat_values(lambda t: tf.cast(t, tf.float32) * 0 + 0.5, tags)
    out = entity_spans.locate(text, starts, ends, entity_spans.decode(tags, scores, LABELS))
    return {k: v.numpy() for k, v in out.items()}


def test_character_offsets_with_unicode_and_repeated_spaces():
    texts = [
        "Zoë  Saldaña visited   São Paulo .",
        "\u6771\u4eac and  Ünïcödé",
        "nothing here",
        "",
    ]
    tags = [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
        ["B-LOC", "I-LOC", "O", "B-PER"],  # each CJK character is a word
        ["O", "O"],
        [],
    ]
    out = _locate(texts, tags)
    assert out["num_entities"].tolist() == [2, 2, 0, 0]
    found = []
    for i, text in enumerate(texts):
        for j in range(out["num_entities"][i]):
            start, end = int(out["entity_start"][i, j]), int(out["entity_end"][i, j])
            entity_text = out["entity_text"][i, j].decode("utf-8")
            assert text[start:end] == entity_text  # Python str (character) offsets
            found.append((entity_text, out["entity_type"][i, j].decode()))
    assert found == [
        ("Zoë  Saldaña", "PER"),
        ("São Paulo", "LOC"),
        ("\u6771\u4eac", "LOC"),
        ("Ünïcödé", "PER"),
    ]
    assert out["entity_start"][2].tolist() == [-1, -1]  # padding


def test_word_splitter_matches_keras_hub_pretokenization():
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize_python

    text = "Don't  stop-me, U.S.A. 2024's café\u6771\u4eac!"
    words, _, _ = word_splitter.split(tf.constant([text]))
    expected = pretokenize_python(text, lowercase=False, strip_accents=False)
    assert [w.decode() for w in words.to_list()[0]] == expected
