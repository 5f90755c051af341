import json

import pytest

from tftransfer.data import tag_schemes, tagged_readers
from tftransfer.data.readers import DataError


@pytest.mark.parametrize(
    "tags,scheme,expected",
    [
        # IOB1 (CoNLL-2003): B- only between adjacent same-type entities.
        (
            ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"],
            "iob1",
            ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"],
        ),
        # Valid IOB2 is left as it is, whatever the scheme.
        (["B-PER", "I-PER", "B-PER", "O"], "auto", ["B-PER", "I-PER", "B-PER", "O"]),
        (["B-PER", "I-PER", "B-PER", "O"], "iob2", ["B-PER", "I-PER", "B-PER", "O"]),
        # BIOES: S- is a one-word entity, E- ends one; I- after E- starts anew.
        (
            ["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "O"],
            "auto",
            ["B-PER", "B-LOC", "I-LOC", "I-LOC", "B-LOC", "O"],
        ),
        (["B-MISC", "E-MISC", "I-MISC"], "bioes", ["B-MISC", "I-MISC", "B-MISC"]),
        # Types with hyphens (WNUT-17).
        (["B-creative-work", "I-creative-work"], "auto", ["B-creative-work", "I-creative-work"]),
    ],
)
def test_to_iob2(tags, scheme, expected):
    assert tag_schemes.to_iob2(tags, scheme) == expected


def test_bad_tags():
    with pytest.raises(tag_schemes.TagError, match="`X-PER`"):
        tag_schemes.to_iob2(["X-PER"])
    with pytest.raises(tag_schemes.TagError, match="BIOES, but the scheme is iob1"):
        tag_schemes.to_iob2(["S-PER"], "iob1")
    assert tag_schemes.iob2_labels(["LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


CONLL03 = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

"""


def test_conll2003_style(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL03)
    s = tagged_readers.read(str(path))
    assert s.tokens == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"]]
    assert s.tags == [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"]]
    assert s.sources == [f"{path}:3", f"{path}:9"]
    assert s.documents == [0, 0]


def test_documents_start_at_docstart_and_at_each_file(tmp_path):
    first, second = tmp_path / "a.conll", tmp_path / "b.conll"
    # The second -DOCSTART- has no blank line before it: it still ends the sentence.
    first.write_text(
        CONLL03 + "-DOCSTART- -X- -X- O\n\nA x y O\n\nB x y O\n-DOCSTART- -X- O O\nC x y O\n"
    )
    second.write_text("D O\n\nE O\n")
    s = tagged_readers.read(f"{first},{second}")
    assert s.tokens[2:] == [["A"], ["B"], ["C"], ["D"], ["E"]]
    assert s.documents == [0, 0, 1, 1, 2, 3, 3]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"tokens": ["x"], "tags": ["O"]}\n{"tokens": ["y"], "tags": ["O"]}\n')
    assert tagged_readers.read(str(jsonl)).documents == [0, 1]


def test_wnut_tabs_and_tab_only_separators(tmp_path):
    path = tmp_path / "wnut.conll"
    path.write_text("@paul\tO\nNew\tB-location\nYork\tI-location\n\t\nhi\tO\n\n")
    s = tagged_readers.read(str(path))
    assert s.tokens == [["@paul", "New", "York"], ["hi"]]
    assert s.tags[0] == ["O", "B-location", "I-location"]


def test_jsonl_and_untagged(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"tokens": ["Anna", "sings"], "tags": ["S-PER", "O"]}) + "\n")
    assert tagged_readers.read(str(path)).tags == [["B-PER", "O"]]
    untagged = tagged_readers.read(str(path), need_tags=False)
    assert untagged.tags is None and untagged.tokens == [["Anna", "sings"]]


@pytest.mark.parametrize(
    "name,content,pattern",
    [
        ("cols.conll", "a X O\nb O\n", r"cols.conll:2: expected 3 columns"),
        ("notag.conll", "a\n", r"notag.conll:1: expected a token and a tag"),
        ("badtag.conll", "a O\nb PER\n", r"badtag.conll:2: tag `PER`"),
        ("empty.conll", "\n\n", r"empty.conll: file is empty"),
        (
            "len.jsonl",
            '{"tokens": ["a", "b"], "tags": ["O"]}\n',
            r"len.jsonl:1: 2 tokens but 1 tags",
        ),
        ("none.jsonl", '{"tokens": [], "tags": []}\n', r"none.jsonl:1: sentence with no tokens"),
        (
            "gap.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", ""], "tags": ["O", "O"]}\n',
            r"gap.jsonl:2: field `tokens` holds an empty token at position 1",
        ),
        (
            "bad.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": \n',
            r"bad.jsonl:2: invalid JSON",
        ),
    ],
)
def test_errors_name_file_and_line(tmp_path, name, content, pattern):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        tagged_readers.read(str(path))


def test_scheme_mismatch_names_the_tag_line(tmp_path):
    path = tmp_path / "mixed.conll"
    path.write_text("a O\nb B-PER\nc S-LOC\n")
    with pytest.raises(DataError, match=r"mixed.conll:3: tag `S-LOC` is BIOES"):
        tagged_readers.read(str(path), tag_scheme="iob1")
