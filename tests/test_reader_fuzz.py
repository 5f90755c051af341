"""Damaged input files: every reader either reads them or says file and line.

Seeded random mutations (deleted, duplicated, swapped and replaced bytes,
cut-off files, stray quotes, tabs and newlines, invalid UTF-8) of one small
valid file per format go through the readers without a model. Each outcome
must be examples or a `DataError` that names the file (and, for line-based
formats, a line); any other exception is a reader bug.
"""

import json
import random
import re

import pytest

from tftransfer import configs
from tftransfer.data import readers, squad_readers, tagged_readers
from tftransfer.data.readers import DataError

MUTATIONS_PER_FORMAT = 150

CSV = 'text,label\n"great movie, loved it",pos\nawful film,neg\n"he said ""meh""",neg\nfine,pos\n'
JSONL = "".join(
    json.dumps(r) + "\n"
    for r in [
        {"text": "great movie", "label": "pos"},
        {"text": "awful film", "label": "neg"},
        {"text": "so-so", "label": "neg"},
    ]
)
CONLL = "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
SQUAD = json.dumps(
    {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "Denver won the game in 2016.",
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Who won?",
                                "answers": [{"text": "Denver", "answer_start": 0}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
)

NOISE = [b'"', b"\t", b"\n", b",", b"{", b"}", b"\xff", b"\xc3", b"\x00", b" ", b"O", b"B-"]


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        kind = rng.randrange(5)
        if kind == 0:
            del data[i : i + rng.randint(1, 8)]
        elif kind == 1:
            data[i:i] = rng.choice(NOISE)
        elif kind == 2:
            data[i : i + 1] = rng.choice(NOISE)
        elif kind == 3:
            j = rng.randrange(len(data))
            data[i], data[j] = data[j], data[i]
        else:
            data = data[:i]  # a cut-off file
    return bytes(data)


def _csv(path):
    return readers.read(configs.InputConfig(path=path, text_column="text", label_column="label"))


def _jsonl(path):
    return readers.read(configs.InputConfig(path=path, text_column="text", label_column="label"))


def _conll(path):
    return tagged_readers.read(path)


def _squad(path):
    return squad_readers.read(path)


@pytest.mark.parametrize(
    "name,content,read,line_based",
    [
        ("data.csv", CSV, _csv, True),
        ("data.jsonl", JSONL, _jsonl, True),
        ("data.conll", CONLL, _conll, True),
        ("data.json", SQUAD, _squad, False),
    ],
)
def test_damaged_files_are_read_or_refused_with_file_and_line(
    tmp_path, name, content, read, line_based
):
    rng = random.Random(f"fuzz-{name}")
    path = tmp_path / name
    outcomes = {"read": 0, "refused": 0}
    for n in range(MUTATIONS_PER_FORMAT):
        damaged = mutate(content.encode("utf-8"), rng)
        path.write_bytes(damaged)
        try:
            read(str(path))
        except DataError as e:
            message = str(e)
            assert str(path) in message, (n, damaged, message)
            if line_based and "file is empty" not in message:
                assert re.search(re.escape(str(path)) + r":\d+", message), (n, damaged, message)
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001 (the point: nothing else may escape)
            pytest.fail(f"mutation {n} of {name} raised {type(e).__name__}: {e}\n{damaged!r}")
        else:
            outcomes["read"] += 1
    assert outcomes["refused"] > 0  # the mutations do damage
