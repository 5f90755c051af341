"""Tiny random backbones and data for fast tests."""

import os

import keras_hub

WORDS = (
    "the a an is was it this that movie film great good bad awful terrible "
    "love hate fun boring happy sad not very really best worst ever plot "
    "acting story i you we they he she what day lovely cafe naive zurich "
    "and or but so to of in on for with hello world there why"
).split()
VOCAB = list(
    dict.fromkeys(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + WORDS
        + ["##s", "##ed", "##ing", "##ly"]
        + list("abcdefghijklmnopqrstuvwxyz.,!?'")
        + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    )
)


def make_preset(path, hidden_dim=16, num_layers=2, num_heads=2, max_len=64):
    """Writes a randomly initialised BERT keras-hub preset folder."""
    if os.path.exists(os.path.join(path, "metadata.json")):
        return path
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True, strip_accents=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=hidden_dim * 2,
        max_sequence_length=max_len,
        dropout=0.0,
    )
    backbone.save_to_preset(path)
    tokenizer.save_to_preset(path)
    return path


POSITIVE = [
    "great movie",
    "i love this film",
    "what a lovely day",
    "best acting ever",
    "really fun story",
    "good plot and great acting",
    "happy happy film",
]
NEGATIVE = [
    "awful movie",
    "i hate this film",
    "worst plot ever",
    "boring and bad",
    "terrible acting",
    "not good at all",
    "really sad and boring story",
]


def write_tsv(path, n_repeat=4):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n_repeat):
            for p, n in zip(POSITIVE, NEGATIVE):
                f.write(f"{p}\tpositive\n{n}\tnegative\n")
    return path
