"""Texts on which a byte-level tokenizer must split as its checkpoint's own (issue 29)."""

import itertools

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
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "text<|endoftext|>more",
        "<|im_end|><|im_end|>",
        "<|im_end",
        " <|im_end|> ",
        "x\u200by",
        "tab\tseparated\tvalues\r\n",
    ]
)
