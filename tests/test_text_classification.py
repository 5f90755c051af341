import numpy as np
import pytest
import tensorflow as tf

from tftransfer import backbones
from tftransfer.data import pipeline, readers
from tftransfer.tasks.text_classification import TextClassification, TextClassificationConfig


def _examples(texts, labels=None, pairs=None):
    return readers.Examples(
        list(texts), pairs, labels, [f"f.csv:{i + 2}" for i in range(len(texts))]
    )


@pytest.fixture
def tokenizer(tiny_preset):
    return backbones.load(tiny_preset)[1]


def _task(tokenizer, text_pair=False, **kwargs):
    cfg = TextClassificationConfig(max_seq_length=16, text_pair=text_pair, **kwargs)
    return TextClassification(cfg, tokenizer)


def test_labels_discovered_numerically_and_saved_in_config(tokenizer):
    task = _task(tokenizer)
    task.prepare(_examples(["a"] * 3, ["10", "2", "1"]))
    assert task.labels == ["1", "2", "10"]
    assert list(task.config.labels) == ["1", "2", "10"]


def test_labels_as_names_or_ids_and_unknown_label_error(tokenizer):
    task = _task(tokenizer, labels=["neg", "pos"])
    ids = task.encode_labels(_examples(["a", "b", "c"], ["pos", "0", "neg"]))
    assert ids.tolist() == [1, 0, 0]
    with pytest.raises(readers.DataError, match=r"f.csv:3: unknown label `meh`"):
        task.encode_labels(_examples(["a", "b"], ["pos", "meh"]))


def test_balanced_class_weights(tokenizer):
    task = _task(tokenizer, labels=["a", "b"], balanced_class_weights=True)
    task.prepare(_examples(["x"] * 4, ["a", "a", "a", "b"]))
    assert task.config.class_weights == pytest.approx([4 / 6, 2.0])
    loss = task.loss(tf.constant([0, 1]), tf.zeros([2, 2]))
    assert loss.numpy() == pytest.approx([np.log(2) * 4 / 6, np.log(2) * 2])


def test_pair_segments_and_int_mask(tokenizer):
    task = _task(tokenizer, text_pair=True, labels=["a", "b"])
    features = task.tokenize(
        {"text": tf.constant(["great movie"]), "text_pair": tf.constant(["bad plot"])}
    )
    tokens = [tokenizer.id_to_token(int(i)) for i in features["token_ids"][0][:7]]
    assert tokens == ["[CLS]", "great", "movie", "[SEP]", "bad", "plot", "[SEP]"]
    assert features["segment_ids"][0][:7].numpy().tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert features["padding_mask"].dtype == tf.int32
    assert features["padding_mask"][0].numpy().sum() == 7


def test_pair_task_requires_pair_column(tokenizer):
    task = _task(tokenizer, text_pair=True, labels=["a", "b"])
    with pytest.raises(readers.DataError, match="text_pair_column"):
        task.raw_dataset(_examples(["x"], ["a"]))


def test_a_label_seen_once_among_many_is_reported_as_a_likely_typo(tokenizer, caplog):
    labels = ["positive", "negative"] * 15 + ["positivP"]
    _task(tokenizer).prepare(_examples(["text"] * len(labels), labels))
    assert "labels seen only once in 31 training examples: `positivP` (f.csv:32)" in caplog.text
    caplog.clear()
    _task(tokenizer).prepare(_examples(["text"] * 30, ["positive", "negative"] * 15))
    assert "seen only once" not in caplog.text


def test_a_validation_split_without_the_pair_column_is_named(tokenizer):
    task = _task(tokenizer, text_pair=None, labels=["a", "b"])
    task.prepare(_examples(["x", "y"], ["a", "b"], pairs=["p", "q"]))
    dev = readers.Examples(["x"], None, ["a"], ["dev.tsv:2"])
    with pytest.raises(readers.DataError, match="dev.tsv: the model classifies sentence pairs"):
        task.validate_examples(dev)


@pytest.mark.parametrize("pooling", ["pooled", "cls", "mean"])
def test_model_outputs_logits_per_label(tiny_preset, pooling):
    backbone, tokenizer = backbones.load(tiny_preset)
    task = _task(tokenizer, labels=["a", "b", "c"], pooling=pooling)
    model = task.build_model(backbone)
    features = task.tokenize({"text": tf.constant(["great movie", "awful"])})
    assert model(features).shape == (2, 3)


def test_padding_does_not_change_predictions(tiny_preset):
    backbone, tokenizer = backbones.load(tiny_preset)
    task = _task(tokenizer, labels=["a", "b"], pooling="mean")
    model = task.build_model(backbone)
    features = task.tokenize({"text": tf.constant(["great movie", "i love this film"])})
    trimmed = pipeline.trim_to_longest(features)
    assert trimmed["token_ids"].shape[1] == 6
    np.testing.assert_allclose(model(features), model(trimmed), atol=1e-5)


def test_postprocess_names_labels(tokenizer):
    task = _task(tokenizer, labels=["neg", "pos"])
    out = task.postprocess(tf.constant([[2.0, 0.0], [0.0, 1.0]]))
    assert out["labels"].numpy().tolist() == [b"neg", b"pos"]
    assert out["label_ids"].numpy().tolist() == [0, 1]
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), [1.0, 1.0], rtol=1e-6)


def test_metrics_report():
    from tftransfer.metrics import classification

    r = classification.report([0, 0, 1, 1], [0, 1, 1, 1], ["n", "p"])
    assert r["accuracy"] == 0.75
    assert r["per_class"]["n"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert r["confusion_matrix"] == [[1, 1], [0, 2]]
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_decoder_backbone_pools_its_last_real_token_with_any_padding(llama_dir):
    backbone, tokenizer = backbones.load(llama_dir)
    backbone = backbones.Backbone(backbone)
    task = _task(tokenizer, labels=["a", "b"])
    assert task.pooling(backbone) == "last"
    model = task.build_model(backbone)
    features = task.tokenize({"text": tf.constant(["what a lovely day", "i love this film"])})
    length = int(features["padding_mask"][0].numpy().sum())
    ids = features["token_ids"][:1, :length]
    left = {
        "token_ids": tf.concat([tf.zeros([1, 3], tf.int32), ids], axis=1),
        "padding_mask": tf.concat([tf.zeros([1, 3], tf.int32), tf.ones_like(ids)], axis=1),
    }
    left["segment_ids"] = tf.zeros_like(left["token_ids"])
    unpadded = {"token_ids": ids, "padding_mask": tf.ones_like(ids), "segment_ids": 0 * ids}
    right = {k: v[:1] for k, v in features.items()}
    # Rotary positions are relative, so masked padding on either side changes nothing.
    np.testing.assert_allclose(model(right), model(unpadded), atol=1e-5)
    np.testing.assert_allclose(model(left), model(unpadded), atol=1e-5)
    with pytest.raises(ValueError, match="no pooler; use `last`"):
        _task(tokenizer, labels=["a", "b"], pooling="pooled").build_model(backbone)


@pytest.mark.slow
def test_decoder_classifier_trains_and_exports_from_config(tmp_path, llama_dir, sentiment_tsv):
    from tftransfer import configs, experiment, export, predict

    params = configs.load(
        [],
        {
            "backbone": {"spec": llama_dir},
            "task": {"text_classification": {"max_seq_length": 16}},
            "data": {
                "train": {"path": sentiment_tsv, "text_column": "sentence"},
                "validation": {"path": sentiment_tsv, "text_column": "sentence"},
            },
            "trainer": {"batch_size": 8, "train_steps": 3, "checkpoint_every": 3},
        },
    )
    run_dir = str(tmp_path / "run")
    metrics = experiment.train(params, run_dir)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    path = export.export_run(run_dir)
    [exported] = predict.with_saved_model(path, [{"text": "what a lovely day"}])
    [in_process] = predict.with_checkpoint(run_dir, [{"text": "what a lovely day"}])
    assert exported["labels"] == in_process["labels"]
    np.testing.assert_allclose(exported["probabilities"], in_process["probabilities"], atol=1e-5)
