"""Entity tag schemes: IOB1, IOB2 (BIO) and BIOES, converted to IOB2.

IOB2 is the internal scheme: every entity starts with `B-`. Converting with
the IOB1 rule (an `I-X` that does not continue an `X` entity starts one) is a
no-op on valid IOB2, and it reads the span the way conlleval does, so `auto`
needs to tell only BIOES (it has `S-`/`E-` tags) from the rest.

Example:

>>> from tftransfer.data import tag_schemes
>>> tag_schemes.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"])
['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC']
"""

SCHEMES = ("auto", "iob1", "iob2", "bioes")
PREFIXES = ("B", "I", "E", "S")


class TagError(ValueError):
    """A tag that no supported scheme allows.

    Attributes:
        index: position of the offending tag in its sentence, when known.
    """

    def __init__(self, message, index=None):
        super().__init__(message)
        self.index = index


def split_tag(tag):
    """Returns (prefix, type); `O` gives ("O", "")."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in PREFIXES or not kind:
        raise TagError(f"tag `{tag}` is not `O` or B-/I-/E-/S- followed by a type")
    return prefix, kind


def to_iob2(tags, scheme="auto"):
    """Converts one sentence's tags to IOB2.

    Args:
        tags: the tags of one sentence.
        scheme: `auto`, `iob1`, `iob2` or `bioes`.

    Returns:
        A new list of IOB2 tags.

    Raises:
        TagError: a malformed tag, or S-/E- tags outside BIOES.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme `{scheme}`; use one of {', '.join(SCHEMES)}")
    parsed = []
    for index, tag in enumerate(tags):
        try:
            parsed.append(split_tag(tag))
        except TagError as e:
            raise TagError(str(e), index) from e
    if scheme == "auto":
        scheme = "bioes" if any(prefix in ("E", "S") for prefix, _ in parsed) else "iob1"
    out = []
    previous = ("O", "")
    for index, (prefix, kind) in enumerate(parsed):
        if prefix in ("E", "S") and scheme != "bioes":
            raise TagError(f"tag `{tags[index]}` is BIOES, but the scheme is {scheme}", index)
        if prefix == "O":
            out.append("O")
        elif prefix in ("B", "S"):
            out.append(f"B-{kind}")
        else:  # I or E: continues an entity of the same type, else starts one
            continues = previous[0] != "O" and previous[1] == kind and previous[0] not in ("E", "S")
            out.append(f"{'I' if continues else 'B'}-{kind}")
        previous = (prefix, kind)
    return out


def entity_types(sequences):
    """The sorted entity types in IOB2 tag sequences."""
    return sorted({split_tag(t)[1] for tags in sequences for t in tags if t != "O"})


def iob2_labels(types):
    """The IOB2 tag vocabulary for entity types: O, then B-/I- per type."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
