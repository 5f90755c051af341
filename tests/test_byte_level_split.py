"""The in-graph byte-level pre-tokenizer splits text as Hugging Face `tokenizers` does."""

import pytest
import tensorflow as tf
from helpers.probes import PROBES

from tftransfer.text import byte_level_split
from tftransfer.text.pre_tokenizers import LLAMA3_REFERENCE

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, pre_tokenizers  # noqa: E402

REFERENCES = {
    "gpt2": (
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        dict(pattern=byte_level_split.GPT2),
    ),
    "smollm2": (
        pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        ),
        dict(pattern=byte_level_split.GPT2, split_digits=True),
    ),
    "llama3": (
        pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_REFERENCE), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        ),
        dict(pattern=byte_level_split.LLAMA3),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_pieces_equal_the_reference_pre_tokenizer(name):
    reference, settings = REFERENCES[name]
    assert len(PROBES) >= 300
    ours = byte_level_split.split(tf.constant(PROBES), **settings).to_list()
    for probe, pieces in zip(PROBES, ours):
        # The reference's pieces are in the byte-to-character alphabet; their
        # offsets point into the probe.
        want = [probe[start:end] for _, (start, end) in reference.pre_tokenize_str(probe)]
        assert [p.decode("utf-8") for p in pieces] == want, repr(probe)
