"""The in-graph byte-level pre-tokenizer splits text as Hugging Face `tokenizers` does."""

import itertools

import pytest
import tensorflow as tf

from tftransfer.text import byte_level_split

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, pre_tokenizers  # noqa: E402

#: Llama 3's split pattern as its tokenizer.json writes it (with the look-ahead).
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

WHITESPACE = [
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\r\n",
    "\r\n\r\n",
    "\t",
    "\t\t",
    " \n",
    "\n ",
    " \n ",
    "\u00a0",
    "\u3000",
    "\u2009",
    " \t ",
    "\x0b",
    "\x0c",
    "\u0085",
    "\u2028",
]
TEXT = ["Hello", "123", "!!!", "'s", "你好", "😀"]
WORDS = [
    "Hello",
    "don't",
    "I'M",
    "4567",
    "3.14",
    "?!",
    "👍🏽",
    "今天天气很好",
    "e\u0301",
    "Ωmega",
    "<|im_end|>",
    "١٢٣",
    "(a)",
    "—",
]
#: Whitespace of every kind before, after and between text of every kind, and
#: text pairs of words, numbers, punctuation, emoji, CJK, combining marks and
#: special-token text.
PROBES = (
    [w + t for w in WHITESPACE for t in TEXT]
    + [t + w for w in WHITESPACE for t in TEXT]
    + [t + w + t for w in WHITESPACE for t in TEXT]
    + [a + " " + b for a, b in itertools.combinations(WORDS, 2)]
    + [
        "",
        "Dear John,\n\nI",
        "a  b   c    d",
        "end  ",
        "x\r\ny",
        "It's   we've  they'll",
        "12345678901",
        "a1b2c3",
        "Ｆｕｌｌｗｉｄｔｈ",
        "line\n  indented\n\tx",
        "<|im_end|>  \n\nuser",
    ]
)

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
                pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
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
