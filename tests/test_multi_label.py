import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import fresh_process

from tftransfer import configs, experiment, export, predict
from tftransfer.data import readers
from tftransfer.data.readers import DataError
from tftransfer.metrics import multi_label as multi_label_metrics
from tftransfer.tasks.multi_label_classification import (
    MultiLabelClassification,
    MultiLabelClassificationConfig,
)

LABELS = ["film", "happy", "sad"]
# (text, labels): "film" when the text names a film, the mood from its words.
ROWS = [
    ("great movie", ["film", "happy"]),
    ("i love this film", ["film", "happy"]),
    ("what a lovely day", ["happy"]),
    ("really fun story", ["happy"]),
    ("awful movie", ["film", "sad"]),
    ("i hate this film", ["film", "sad"]),
    ("boring and bad", ["sad"]),
    ("really sad and boring story", ["sad"]),
    ("the film", ["film"]),
    ("it was a day", []),
]


def _write_encodings(tmp_path, rows):
    """The same data as a JSONL list, a delimited TSV column and 0/1 CSV columns."""
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "tags": ls}) + "\n" for t, ls in rows))
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\ttags\n" + "".join(f"{t}\t{'|'.join(ls)}\n" for t, ls in rows))
    csv = tmp_path / "d.csv"
    csv.write_text(
        "text,"
        + ",".join(LABELS)
        + "\n"
        + "".join(t + "," + ",".join(str(int(n in ls)) for n in LABELS) + "\n" for t, ls in rows)
    )
    return {
        "jsonl": configs.InputConfig(path=str(jsonl), label_column="tags"),
        "tsv": configs.InputConfig(path=str(tsv), label_column="tags", label_delimiter="|"),
        "columns": configs.InputConfig(path=str(csv), label_columns=LABELS),
    }


@pytest.fixture(scope="module")
def tokenizer(tiny_preset):
    from tftransfer import backbones

    return backbones.load(tiny_preset)[1]


def _task(tokenizer, **kwargs):
    return MultiLabelClassification(MultiLabelClassificationConfig(**kwargs), tokenizer)


def test_three_label_encodings_read_the_same(tmp_path, tokenizer):
    specs = _write_encodings(tmp_path, ROWS)
    encoded = {}
    for name, spec in specs.items():
        examples = MultiLabelClassification.read(spec)
        task = _task(tokenizer)
        task.prepare(examples)
        assert task.labels == LABELS, name
        encoded[name] = task.encode_labels(examples)
    expected = np.array([[float(n in ls) for n in LABELS] for _, ls in ROWS])
    for name, hot in encoded.items():
        np.testing.assert_array_equal(hot, expected, err_msg=name)
    assert encoded["jsonl"][-1].sum() == 0  # a text with no label is allowed


@pytest.mark.parametrize("delimiter", ["", ";"])
def test_labels_joined_by_a_delimiter_not_given_are_refused(tmp_path, tokenizer, delimiter):
    # GoEmotions' upstream TSVs join label ids with commas: without
    # `label_delimiter: ','` (or with a wrong one) `anger,fear` would be a class.
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\ttags\n" + "".join(f"{t}\t{','.join(ls)}\n" for t, ls in ROWS))
    spec = configs.InputConfig(path=str(tsv), label_column="tags", label_delimiter=delimiter)
    with pytest.raises(DataError, match=rf"{tsv}: 2 of 5 labels look like lists joined by `,`"):
        MultiLabelClassification.read(spec)
    task = _task(tokenizer)
    task.prepare(MultiLabelClassification.read(spec.replace(label_delimiter=",")))
    assert task.labels == LABELS


def test_unknown_label_and_bad_flag_name_file_line_and_field(tmp_path, tokenizer):
    specs = _write_encodings(tmp_path, ROWS)
    task = _task(tokenizer)
    task.prepare(MultiLabelClassification.read(specs["jsonl"]))
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"text": "a", "tags": ["film"]}\n{"text": "b", "tags": ["happy", "angry"]}\n')
    with pytest.raises(DataError, match=rf"{dev}:2: unknown label `angry`"):
        task.validate_examples(
            MultiLabelClassification.read(configs.InputConfig(path=str(dev), label_column="tags"))
        )
    bad = tmp_path / "bad.csv"
    bad.write_text("text,film,happy,sad\nok,1,0,0\nnot ok,1,yes please,0\n")
    with pytest.raises(DataError, match=rf"{bad}:3: field `happy` must be 0 or 1"):
        MultiLabelClassification.read(configs.InputConfig(path=str(bad), label_columns=LABELS))
    with pytest.raises(DataError, match=rf"{bad}:1: no column `joy`"):
        readers.read(configs.InputConfig(path=str(bad), label_columns=["joy"]), labels="multi")


def test_loss_is_mean_binary_cross_entropy(tokenizer):
    task = _task(tokenizer, labels=LABELS, positive_weights=[1.0, 1.0, 3.0])
    logits = tf.constant([[2.0, -1.0, 0.5]])
    labels = tf.constant([[1.0, 0.0, 1.0]])
    p = 1 / (1 + np.exp(-logits.numpy()[0]))
    terms = -np.array([np.log(p[0]), np.log(1 - p[1]), 3.0 * np.log(p[2])])
    np.testing.assert_allclose(task.loss(labels, logits).numpy(), [terms.mean()], rtol=1e-5)


def test_tuned_thresholds_improve_dev_macro_f1():
    # A rare label whose probabilities are well ranked but never reach 0.5:
    # at 0.5 it is never predicted (F1 0); tuning finds its threshold.
    rng = np.random.default_rng(0)
    gold = (rng.random((400, 2)) < [0.5, 0.1]).astype(int)
    probabilities = np.where(gold == 1, 0.6, 0.4) + rng.normal(0, 0.05, gold.shape)
    probabilities[:, 1] -= 0.3
    at_half = multi_label_metrics.report(gold, probabilities, [0.5, 0.5], ["a", "b"])
    assert at_half["per_label"]["b"]["f1"] == 0.0
    tuned = multi_label_metrics.tune_thresholds(gold, probabilities)
    at_tuned = multi_label_metrics.report(gold, probabilities, tuned, ["a", "b"])
    assert 0.1 < tuned[1] < 0.5
    assert at_tuned["macro_f1"] > at_half["macro_f1"] + 0.4
    one = multi_label_metrics.tune_thresholds(gold, probabilities, mode="global")
    assert len(set(one.tolist())) == 1
    assert (
        at_half["macro_f1"]
        < multi_label_metrics.report(gold, probabilities, one, ["a", "b"])["macro_f1"]
        <= at_tuned["macro_f1"]
    )


def _scores(rng, gold, separation):
    """Probabilities that rank positives above negatives by `separation` per label."""
    logits = rng.normal(0, 1, gold.shape) + (gold * 2 - 1) * np.asarray(separation) / 2 - 1.5
    return 1 / (1 + np.exp(-logits))


def test_shrunk_thresholds_pull_a_few_positives_towards_the_global_threshold():
    # Four labels with plenty of positives and a clear signal, and one with
    # six positives whose scores carry no signal: its own F1-best threshold
    # fits those six by chance and would not carry over to new data.
    rng = np.random.default_rng(0)
    rates = [0.3, 0.3, 0.3, 0.3, 0.0]
    gold = (rng.random((2000, 5)) < rates).astype(int)
    gold[rng.choice(2000, 6, replace=False), 4] = 1
    probabilities = _scores(rng, gold, [3, 3, 3, 3, 0])
    own = multi_label_metrics.tune_thresholds(gold, probabilities)
    common = multi_label_metrics.tune_thresholds(gold, probabilities, "global")[0]
    shrunk = multi_label_metrics.tune_thresholds(gold, probabilities, "shrunk")
    assert abs(shrunk[4] - common) < abs(own[4] - common)  # the rare label moved
    np.testing.assert_allclose(shrunk[:4], own[:4], atol=0.03)  # the others barely


def test_shrinkage_is_a_positives_weighted_mean():
    own, common = np.array([0.1, 0.6, 0.3]), np.array([0.4, 0.4, 0.4])
    positives = np.array([5, 500, 0])
    shrunk = multi_label_metrics._shrink(own, common, positives, 20)
    w = np.array([5 / 25, 500 / 520, 0.0])  # no positives: nothing of its own
    np.testing.assert_allclose(shrunk, np.round(w * own + (1 - w) * common, 2))
    np.testing.assert_allclose(multi_label_metrics._shrink(own, common, positives, 0)[:2], own[:2])
    assert multi_label_metrics._shrink(own, common, positives, np.inf).tolist() == [0.4] * 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_preset):
    data = tmp_path_factory.mktemp("multi_label")
    spec = _write_encodings(data, ROWS * 6)["jsonl"]
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {
                "type": "multi_label_classification",
                "multi_label_classification": {"max_seq_length": 32, "pooling": "mean"},
            },
            "data": {"train": spec.as_dict(), "validation": spec.as_dict()},
            "trainer": {"batch_size": 8, "learning_rate": 3e-3, "epochs": 3},
        },
    )
    model_dir = str(data / "run")
    metrics = experiment.train(params, model_dir)
    return model_dir, metrics


@pytest.mark.slow
def test_training_tunes_thresholds_and_saves_them(run_dir):
    model_dir, metrics = run_dir
    assert {"micro_f1", "macro_f1", "weighted_f1", "exact_match", "per_label"} <= set(metrics)
    saved = configs.load([f"{model_dir}/params.yaml"], {})
    thresholds = saved.task.multi_label_classification.thresholds
    assert thresholds == metrics["tuned_thresholds"] and len(thresholds) == 3
    assert metrics["tuned_macro_f1"] >= metrics["macro_f1"]
    assert metrics["tuned_macro_f1"] > 0.7  # it learned (chance is about 0.5)
    assert os.path.exists(f"{model_dir}/eval_validation_per_label.png")


@pytest.mark.slow
def test_export_in_a_fresh_process_matches_predict(run_dir, tmp_path):
    model_dir, _ = run_dir
    path = export.export_run(model_dir, str(tmp_path / "serving"))
    rows = [{"text": t} for t, _ in ROWS]
    served = fresh_process.serve(path, ["text"], rows)["outputs"]
    expected = predict.with_checkpoint(model_dir, rows)
    np.testing.assert_allclose(
        served["probabilities"], [r["probabilities"] for r in expected], atol=1e-5
    )
    # The export pads each text's label list to the request's longest; predict trims.
    served_labels = [[n for n in ls if n] for ls in served["labels"]]
    assert served_labels == [r["labels"] for r in expected]
    thresholds = export.read_metadata(path)["thresholds"]
    for r in expected:
        chosen = [n for n, p, t in zip(LABELS, r["probabilities"], thresholds) if p >= t]
        assert r["labels"] == chosen
