"""The shipped configs read their TensorFlow Datasets sets as TFDS serves them.

The examples are served offline with each dataset's real feature spec (see
`helpers.fake_tfds`), so a wrong feature name, split name or label mapping in a
config fails here rather than on a user's first run with a network.
"""

import os

import pytest
from helpers.fake_tfds import fake_tfds

from tftransfer import configs, run_setup
from tftransfer.data import tag_schemes

ROOT = os.path.join(os.path.dirname(__file__), "..")

_EMOTIONS = configs.load(
    [os.path.join(ROOT, "configs", "goemotions_minilm.yaml")]
).task.multi_label_classification.labels


def _emotions(*on):
    return {"comment_text": f"so {' and '.join(on)}", **{e: e in on for e in _EMOTIONS}}


def _sentence(tokens, tags):
    return {
        "tokens": tokens,
        "ner": tags,
        "pos": ["NN"] * len(tokens),
        "chunks": ["O"] * len(tokens),
    }


EXAMPLES = {
    ("glue/sst2", "train"): [
        {"idx": 0, "sentence": "a gorgeous film ", "label": 1},
        {"idx": 1, "sentence": "dull and overlong ", "label": 0},
    ],
    ("glue/sst2", "validation"): [{"idx": 0, "sentence": "it 's a charming trip ", "label": 1}],
    ("trec", "train"): [
        {"text": "What is a caldera ?", "label-coarse": "DESC", "label-fine": "def"},
        {"text": "Who wrote Hamlet ?", "label-coarse": "HUM", "label-fine": "ind"},
    ],
    ("trec", "test"): [{"text": "How far is Mars ?", "label-coarse": "NUM", "label-fine": "dist"}],
    ("conll2003", "train"): [
        _sentence(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"])
    ],
    ("conll2003", "dev"): [_sentence(["Peter", "Blackburn"], ["B-PER", "I-PER"])],
    ("conll2003", "test"): [_sentence(["Japan", "won"], ["B-LOC", "O"])],
    ("goemotions", "train"): [_emotions("joy", "love"), _emotions("neutral")],
    ("goemotions", "validation"): [_emotions("grief")],
    ("goemotions", "test"): [_emotions("anger", "fear")],
}
for split in ("train", "validation"):
    EXAMPLES[("squad/v1.1", split)] = [
        {
            "id": f"{split}-1",
            "title": "Paris",
            "context": "Paris is the capital of France.",
            "question": "What is Paris the capital of?",
            "answers": {"text": ["France", "France"], "answer_start": [24, 24]},
        }
    ]


def _tfds_configs():
    names = []
    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if name.endswith(".yaml"):
            params = configs.load([os.path.join(ROOT, "configs", name)])
            if params.data.train.path.startswith("tfds:"):
                names.append(name)
    return names


@pytest.mark.parametrize("name", _tfds_configs())
def test_each_split_reads_with_the_configs_fields_and_labels(name):
    params = configs.load([os.path.join(ROOT, "configs", name)])
    with fake_tfds(EXAMPLES):
        for split in ("train", "validation", "test"):
            spec = getattr(params.data, split)
            if not spec.path:
                continue
            dataset = spec.path[len("tfds:") :]
            served = EXAMPLES[(dataset, spec.split)]
            need_labels = params.task.type != "masked_lm"
            examples = run_setup.read_split(params, split, need_labels=need_labels)
            assert len(examples) == len(served)
            _check_labels(params, examples, served)


def _check_labels(params, examples, served):
    task = params.task.type
    if task == "text_classification" and params.task.text_classification.labels:
        assert set(examples.labels) <= set(params.task.text_classification.labels)
        assert examples.texts[0] == served[0]["sentence"]
    elif task == "text_classification":  # TREC: the coarse names, as CogComp's files have them
        assert examples.labels == [e["label-coarse"] for e in served]
    elif task == "multi_label_classification":
        assert examples.labels == [[e for e in _EMOTIONS if row[e]] for row in served]
    elif task == "token_classification":
        assert examples.tags == [row["ner"] for row in served]
        assert all(
            t in tag_schemes.iob2_labels(["PER", "ORG", "LOC", "MISC"])
            for s in examples.tags
            for t in s
        )
    elif task == "question_answering":
        assert examples.answers == [[("France", 24), ("France", 24)]]


def test_train_and_dev_together():
    params = configs.load(
        [
            os.path.join(ROOT, "configs", "conll03_minilm.yaml"),
            os.path.join(ROOT, "configs", "conll03_minilm_train_dev.yaml"),
        ]
    )
    with fake_tfds(EXAMPLES):
        examples = run_setup.read_split(params, "train")
    assert examples.tokens == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
