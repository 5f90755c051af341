"""Tiny random backbones and data for fast tests."""

import os

import keras
import keras_hub

WORDS = (
    "the a an is was it this that movie film great good bad awful terrible "
    "love hate fun boring happy sad not very really best worst ever plot "
    "acting story i you we they he she what day lovely cafe naive zurich "
    "and or but so to of in on for with hello world there why "
    "alice bob carol paris london berlin acme visited met works at lives who"
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


def make_preset(path, hidden_dim=16, num_layers=2, num_heads=2, max_len=64, seed=0):
    """Writes a randomly initialised BERT keras-hub preset folder."""
    if os.path.exists(os.path.join(path, "metadata.json")):
        return path
    # Seeded so that every run tests the same weights: an unseeded draw made
    # tests that measure small effects pass or fail by luck.
    keras.utils.set_random_seed(seed)
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


PEOPLE = ["alice", "bob", "carol smith", "bobs"]  # "bobs" is two subwords: bob ##s
PLACES = ["paris", "london", "berlin", "new paris"]
ORGS = ["acme", "acme films"]
TEMPLATES = [
    "{PER} visited {LOC}",
    "{PER} works at {ORG} in {LOC}",
    "{PER} met {PER} in {LOC}",
    "the movie was great and {PER} lives in {LOC}",
    "{ORG} hate {LOC}",
]


def tagged_sentences(n_repeat=2):
    """Synthetic (tokens, IOB2 tags) sentences from the templates."""
    fill = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    out = []
    for r in range(n_repeat):
        for t, template in enumerate(TEMPLATES):
            tokens, tags, used = [], [], {}
            for piece in template.split():
                if piece.startswith("{"):
                    kind = piece[1:-1]
                    used[kind] = used.get(kind, 0) + 1
                    choices = fill[kind]
                    entity = choices[(r + t + used[kind]) % len(choices)].split()
                    tokens += entity
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
                else:
                    tokens.append(piece)
                    tags.append("O")
            out.append((tokens, tags))
    return out


def write_conll(path, n_repeat=2, scheme="iob2"):
    """Writes the synthetic sentences as CoNLL (token POS tag)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- O\n\n")
        for tokens, tags in tagged_sentences(n_repeat):
            if scheme == "bioes":
                tags = to_bioes(tags)
            for token, tag in zip(tokens, tags):
                f.write(f"{token} NN {tag}\n")
            f.write("\n")
    return path


def to_bioes(tags):
    out = []
    for i, tag in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        ends = not nxt.startswith("I-")
        if tag.startswith("B-"):
            out.append(("S-" if ends else "B-") + tag[2:])
        elif tag.startswith("I-"):
            out.append(("E-" if ends else "I-") + tag[2:])
        else:
            out.append(tag)
    return out


FILLER = "the movie was great and we love this film it was a lovely day in the cafe".split()


def name_questions(n=40, seed=3, long_every=4):
    """Synthetic SQuAD document: the answer is the one person in the context.

    Every `long_every`-th context is long enough to need several windows.
    """
    import random

    rng = random.Random(seed)
    people = ["alice", "bob", "carol"]
    paragraphs = []
    for i in range(n):
        size = 40 if i % long_every == 0 else 8
        words = [rng.choice(FILLER) for _ in range(size)]
        at = rng.randrange(size)
        words.insert(at, people[i % 3])
        context = " ".join(words)
        start = len(" ".join(words[:at])) + (1 if at else 0)
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": "who is there ?",
                        "answers": [{"text": people[i % 3], "answer_start": start}],
                    }
                ],
            }
        )
    return {"version": "1.1", "data": [{"title": "names", "paragraphs": paragraphs}]}
