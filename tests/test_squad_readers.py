import json

import pytest

from tftransfer.data import squad_readers
from tftransfer.data.readers import DataError

CONTEXT = "Denver Broncos beat the Carolina Panthers. The Broncos won in 2016."


def _squad(qas, version="2.0"):
    return {
        "version": version,
        "data": [{"title": "Super_Bowl", "paragraphs": [{"context": CONTEXT, "qas": qas}]}],
    }


def test_squad_v2_json(tmp_path):
    path = tmp_path / "train.json"
    qas = [
        {
            "id": "q1",
            "question": "Who won?",
            "answers": [{"text": "Denver Broncos", "answer_start": 0}],
        },
        {"id": "q2", "question": "Who lost?", "answers": [], "is_impossible": True},
    ]
    path.write_text(json.dumps(_squad(qas)))
    examples = squad_readers.read(str(path))
    assert examples.ids == ["q1", "q2"]
    assert examples.answers == [[("Denver Broncos", 0)], []]
    assert examples.is_impossible == [False, True]
    assert examples.version == "2.0" and examples.titles == ["Super_Bowl"] * 2
    assert not examples.problems


def test_mismatched_answer_start_is_repaired_or_dropped_and_reported(tmp_path):
    path = tmp_path / "train.json"
    qas = [
        {"id": "near", "question": "Q?", "answers": [{"text": "Broncos", "answer_start": 46}]},
        {"id": "gone", "question": "Q?", "answers": [{"text": "Chiefs", "answer_start": 3}]},
        {"id": "ok", "question": "Q?", "answers": [{"text": "2016", "answer_start": 62}]},
    ]
    path.write_text(json.dumps(_squad(qas, "1.1")))
    examples = squad_readers.read(str(path))
    # "Broncos" occurs at 7 and 47: 46 is nearest 47.
    assert examples.answers[0] == [("Broncos", 47)]
    assert examples.answers[1] == []
    assert examples.problems.repaired == [("near", 46, 47)]
    assert examples.problems.dropped == [("gone", 3, "Chiefs")]
    summary = examples.problems.summary()
    assert "1 answer(s) had an answer_start" in summary and "near (46->47)" in summary
    assert "'Chiefs'" in summary


def test_jsonl(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "id": "a",
            "question": "Who?",
            "context": CONTEXT,
            "answer_text": "Carolina Panthers",
            "answer_start": 24,
        },
        {"id": "b", "question": "Why?", "context": CONTEXT, "answer_text": ""},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = squad_readers.read(str(path))
    assert examples.answers == [[("Carolina Panthers", 24)], []]
    assert examples.is_impossible == [False, True]
    assert examples.sources == [f"{path}:1", f"{path}:2"]


@pytest.mark.parametrize(
    "content,pattern",
    [
        ('{"data": [\n  {"title": "x",}\n]}', r"train.json:2:\d+: invalid JSON"),
        ('{"version": "1.1"}', "expected a SQuAD object with a `data` list"),
        (
            json.dumps(_squad([{"id": "q", "question": "", "answers": []}])),
            r"qas\[0\]: field `question` must be a non-empty string",
        ),
        (
            json.dumps(_squad([{"id": "q", "question": "Q?", "answers": [{"text": "x"}]}])),
            r"qas\[0\].answers\[0\]: needs `text`",
        ),
        (
            json.dumps(_squad([{"id": "q", "question": "Q?", "answers": []}])),
            "has no answers and is not marked is_impossible",
        ),
        (
            json.dumps(
                _squad([{"id": "q", "question": "Q?", "answers": [], "is_impossible": True}] * 2)
            ),
            "question id `q` was already used",
        ),
    ],
)
def test_errors_name_the_place(tmp_path, content, pattern):
    path = tmp_path / "train.json"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        squad_readers.read(str(path))
