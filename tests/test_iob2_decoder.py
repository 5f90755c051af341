"""Constrained IOB2 decoding: the best valid tag sequence, in a graph too."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tftransfer import configs
from tftransfer.text import iob2_decoder

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _best_valid(probabilities):
    """The highest-probability valid IOB2 sequence, by trying them all."""
    best, best_score = [], -np.inf
    for tags in itertools.product(range(len(LABELS)), repeat=len(probabilities)):
        names = [LABELS[t] for t in tags]
        valid = all(
            not tag.startswith("I-") or (prev != "O" and prev[2:] == tag[2:])
            for prev, tag in zip(["O"] + names, names)
        )
        score = sum(np.log(probabilities[i, t]) for i, t in enumerate(tags))
        if valid and score > best_score:
            best, best_score = list(tags), score
    return best


def test_decoding_finds_the_best_valid_sequence_for_every_sentence_length():
    rng = np.random.default_rng(0)
    # Peaked probabilities make invalid argmax sequences (O I-PER) common.
    sentences = [rng.dirichlet(np.full(5, 0.3), size=n) for n in (3, 0, 1, 5, 2, 4, 6, 1)]
    probabilities = tf.RaggedTensor.from_row_lengths(
        np.concatenate(sentences).astype(np.float32), [len(s) for s in sentences]
    )
    decode = tf.function(lambda p: iob2_decoder.decode(p, LABELS))
    decoded = decode(probabilities).to_list()
    assert decoded == [_best_valid(s) for s in sentences]
    argmax = [list(np.argmax(s, -1)) for s in sentences]
    assert decoded != argmax  # some argmax sequences were invalid and got mended


def test_decoding_keeps_a_valid_argmax_and_mends_an_invalid_one():
    probabilities = tf.ragged.constant(
        [
            [[0.1, 0.8, 0.1, 0.0, 0.0], [0.1, 0.1, 0.8, 0.0, 0.0]],  # B-PER I-PER: kept
            [[0.45, 0.4, 0.15, 0.0, 0.0], [0.1, 0.1, 0.8, 0.0, 0.0]],  # O I-PER: mended
        ],
        ragged_rank=1,
    )
    assert iob2_decoder.decode(probabilities, LABELS).to_list() == [[1, 2], [1, 2]]


@pytest.mark.parametrize("lengths", [[1], [1, 0, 1], [0, 0], [], [2, 1]])
def test_short_and_empty_batches_decode_in_a_graph_without_static_shapes(lengths):
    # As in the exported signatures: no dimension is known when tracing.
    spec = tf.RaggedTensorSpec([None, None, len(LABELS)], tf.float32, ragged_rank=1)
    decode = tf.function(lambda p: iob2_decoder.decode(p, LABELS), input_signature=[spec])
    probabilities = np.full((sum(lengths), len(LABELS)), 0.1, np.float32)
    probabilities[:, 3] = 0.6  # B-LOC everywhere
    ragged = tf.RaggedTensor.from_row_lengths(probabilities, tf.constant(lengths, tf.int64))
    assert decode(ragged).to_list() == [[3] * n for n in lengths]


def test_config_rejects_an_unknown_decoding():
    with pytest.raises(configs.ConfigError, match="decoding must be"):
        configs.load(
            [],
            {
                "task": {
                    "type": "token_classification",
                    "token_classification": {"decoding": "viterbi"},
                }
            },
        )
