import random

import numpy as np
import pytest
import tensorflow as tf
from helpers import fresh_process

from tftransfer import backbones, configs, experiment, export, loaded_run, predict
from tftransfer.data import pipeline
from tftransfer.tasks.text_classification import TextClassification, TextClassificationConfig

NEUTRAL = "the a an is was it this that movie film plot story i you we they day cafe and or".split()
ENDINGS = {"positive": "great lovely fun best", "negative": "awful boring worst bad"}
LENGTH = 16  # 14 tokens per window


def _documents(n, seed=0):
    """Long texts whose label is decided by their last words only."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        filler = " ".join(rng.choice(NEUTRAL) for _ in range(rng.randint(16, 50)))
        rows.append((f"{filler} {ENDINGS[label]}", label))
    return rows


@pytest.fixture(scope="module")
def tokenizer(tiny_preset):
    return backbones.load(tiny_preset)[1]


def _task(tokenizer, **kwargs):
    cfg = TextClassificationConfig(labels=["negative", "positive"], max_seq_length=LENGTH, **kwargs)
    return TextClassification(cfg, tokenizer)


def _ids(tokenizer, text):
    return np.asarray(tokenizer(text)).tolist()


def _content(ids, mask, segments=None, segment=0):
    """Token ids of one row without special tokens, padding or other segments."""
    keep = (mask == 1) & ((segments == segment) if segments is not None else True)
    return [t for t in ids[keep].tolist() if t not in (2, 3)]  # [CLS], [SEP]


@pytest.mark.parametrize("stride", [0, 5, 14])
def test_windows_cover_every_token_in_order(tokenizer, stride):
    task = _task(tokenizer, long_texts="windows", window_stride=stride, max_windows=16)
    texts = [t for t, _ in _documents(6)] + ["great"]
    features = {k: v.numpy() for k, v in task.tokenize({"text": tf.constant(texts)}).items()}
    assert features["token_ids"].shape == (7, 16, LENGTH)
    step = stride or (LENGTH - 2) // 2
    for i, text in enumerate(texts):
        tokens = _ids(tokenizer, text)
        windows = [
            _content(ids, mask)
            for ids, mask in zip(features["token_ids"][i], features["padding_mask"][i])
            if mask[0]
        ]
        assert len(windows) == 1 + max(0, -(-(len(tokens) - (LENGTH - 2)) // step))
        for k, window in enumerate(windows):
            assert window == tokens[k * step : k * step + LENGTH - 2]
        assert windows[-1][-1] == tokens[-1]  # the last window reaches the end


def test_pairs_repeat_the_second_text_in_every_window(tokenizer):
    task = _task(tokenizer, long_texts="windows", text_pair=True)
    text, _ = _documents(1)[0]
    features = task.tokenize({"text": tf.constant([text]), "text_pair": tf.constant(["bad plot"])})
    pair = _ids(tokenizer, "bad plot")
    rows = zip(*(features[k].numpy()[0] for k in ("token_ids", "padding_mask", "segment_ids")))
    seen = [_content(ids, mask, seg, 1) for ids, mask, seg in rows if mask[0]]
    assert len(seen) > 2 and all(p == pair for p in seen)


@pytest.mark.parametrize(
    "mode, kept", [("head", slice(0, 14)), ("tail", slice(-14, None)), ("head_tail", None)]
)
def test_truncation_keeps_head_tail_or_both(tokenizer, mode, kept):
    task = _task(tokenizer, truncation=mode)
    text, _ = _documents(1)[0]
    tokens = _ids(tokenizer, text)
    row = {k: v.numpy()[0] for k, v in task.tokenize({"text": tf.constant([text])}).items()}
    expected = tokens[:3] + tokens[-11:] if kept is None else tokens[kept]
    assert _content(row["token_ids"], row["padding_mask"]) == expected


@pytest.fixture(scope="module", params=["mean", "attention"])
def run_dir(request, tmp_path_factory, tiny_preset):
    data = tmp_path_factory.mktemp("long")
    for split, seed in (("train", 0), ("dev", 1)):
        with open(data / f"{split}.tsv", "w") as f:
            f.write("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in _documents(128, seed)))
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {
                "text_classification": {
                    "max_seq_length": LENGTH,
                    "pooling": "mean",
                    "long_texts": "windows",
                    "window_aggregation": request.param,
                }
            },
            "data": {
                "train": {"path": str(data / "train.tsv")},
                "validation": {"path": str(data / "dev.tsv")},
            },
            "trainer": {"batch_size": 8, "learning_rate": 1e-3, "epochs": 10},
        },
    )
    model_dir = str(data / f"run_{request.param}")
    return model_dir, experiment.train(params, model_dir)


@pytest.mark.slow
def test_windows_learn_a_label_that_only_the_last_window_shows(run_dir, tokenizer):
    _, metrics = run_dir
    assert metrics["accuracy"] > 0.75  # chance is 0.5: head truncation sees nothing
    # Head truncation never sees the deciding words.
    head = _task(tokenizer).tokenize({"text": tf.constant([t for t, _ in _documents(8)])})
    last = set(_ids(tokenizer, ENDINGS["positive"] + " " + ENDINGS["negative"]))
    assert not last & set(head["token_ids"].numpy().ravel().tolist())


@pytest.mark.slow
def test_training_evaluation_and_export_aggregate_alike(run_dir, tmp_path):
    model_dir, _ = run_dir
    loaded = loaded_run.LoadedRun(model_dir)
    task, model = loaded.task, loaded.model
    texts = [t for t, _ in _documents(5, seed=3)]
    rows = [{"text": t} for t in texts]
    # What the training step computes, on batches built as training builds them.
    examples = task.read(configs.InputConfig(path=_write_unlabelled(tmp_path, texts)), False)
    encoded = pipeline.encoded_dataset(task, examples, loaded.params.data, with_labels=False)
    features = next(iter(encoded.batch(len(texts))))
    trained = tf.nn.softmax(model(features, training=False)).numpy()
    # By hand: the window model on each real window alone, logits averaged.
    window_model = model.window_model
    by_hand = []
    for i in range(len(texts)):
        real = features["padding_mask"][i, :, 0].numpy() == 1
        one = {k: v[i][real] for k, v in features.items()}
        out = window_model(one, training=False)
        logits = out["logits"].numpy()
        if "score" in out:
            w = tf.nn.softmax(out["score"][:, 0]).numpy()
            by_hand.append((w[:, None] * logits).sum(0))
        else:
            by_hand.append(logits.mean(0))
    np.testing.assert_allclose(trained, tf.nn.softmax(np.array(by_hand)).numpy(), atol=1e-5)
    evaluated = np.array([r["probabilities"] for r in predict.with_checkpoint(model_dir, rows)])
    np.testing.assert_allclose(evaluated, trained, atol=1e-5)
    path = export.export_run(model_dir, str(tmp_path / "serving"))
    served = fresh_process.serve(path, ["text"], rows)["outputs"]["probabilities"]
    np.testing.assert_allclose(served, trained, atol=1e-5)


def _write_unlabelled(tmp_path, texts):
    path = tmp_path / "texts.tsv"
    path.write_text("text\n" + "".join(t + "\n" for t in texts))
    return str(path)


@pytest.mark.parametrize("aggregation", ["mean", "max", "attention"])
def test_multi_label_and_regression_answer_once_per_long_text(tiny_preset, aggregation):
    from tftransfer.tasks.multi_label_classification import (
        MultiLabelClassification,
        MultiLabelClassificationConfig,
    )
    from tftransfer.tasks.text_regression import TextRegression, TextRegressionConfig

    backbone, tokenizer = backbones.load(tiny_preset)
    texts = tf.constant([t for t, _ in _documents(3)] + ["great"])
    windows = dict(long_texts="windows", max_seq_length=LENGTH, window_aggregation=aggregation)
    for task, key, width in (
        (
            MultiLabelClassification(
                MultiLabelClassificationConfig(labels=["a", "b", "c"], **windows), tokenizer
            ),
            "probabilities",
            3,
        ),
        (
            TextRegression(TextRegressionConfig(targets=["x", "y"], **windows), tokenizer),
            "scores",
            2,
        ),
    ):
        model = task.build_model(backbone)
        answers = task.postprocess(model(task.tokenize({"text": texts})))
        assert answers[key].shape == (4, width)
        # A text's answer does not depend on the other texts of the request.
        alone = task.postprocess(model(task.tokenize({"text": texts[:1]})))
        np.testing.assert_allclose(alone[key][0], answers[key][0], atol=1e-5)
