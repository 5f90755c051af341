"""Length bucketing: every example once, in order, in few shapes, same results."""

import numpy as np
import pytest
import tensorflow as tf

from tftransfer import backbones, configs, evaluation
from tftransfer.data import pipeline, readers
from tftransfer.tasks.text_classification import TextClassification, TextClassificationConfig

MAX_LEN = 16
BUCKETS = [4, 8]


def _examples(n=23):
    # 1 to 13 words: rows of 3 to 15 tokens with [CLS] and [SEP].
    texts = [" ".join(["great", "movie", "film"][: 1 + i % 3] * (1 + i % 5)) for i in range(n)]
    labels = ["a", "b"] * (n // 2) + ["a"] * (n % 2)
    return readers.Examples(texts, None, labels, [f"f.csv:{i + 2}" for i in range(n)])


@pytest.fixture(scope="module")
def loaded(tiny_preset):
    backbone, tokenizer = backbones.load(tiny_preset)
    cfg = TextClassificationConfig(max_seq_length=MAX_LEN, labels=["a", "b"])
    task = TextClassification(cfg, tokenizer)
    return task, task.build_model(backbone)


def _data(buckets):
    return configs.DataConfig(bucket_boundaries=list(buckets))


@pytest.mark.slow
def test_eval_batches_hold_every_example_once_in_its_bucket(loaded):
    task, _ = loaded
    examples = _examples()
    batches = list(task.eval_dataset(examples, 3, _data(BUCKETS)))
    index = np.concatenate([i.numpy() for _, i in batches])
    assert sorted(index.tolist()) == list(range(len(examples)))
    assert index.tolist() != sorted(index.tolist())  # bucketing reorders...
    widths = [f["token_ids"].shape[1] for f, _ in batches]
    assert set(widths) == {4, 8, 16}  # ...into one shape per bucket
    full = task.tokenize({"text": tf.constant(examples.texts)})
    lower = {4: 0, 8: 4, 16: 8}
    for features, positions in batches:
        width = features["token_ids"].shape[1]
        lengths = features["padding_mask"].numpy().sum(axis=1)
        assert all(lower[width] < n <= width for n in lengths)
        # Each row is its example's tokens, cut only where there was padding.
        expected = tf.gather(full["token_ids"], positions)[:, :width]
        np.testing.assert_array_equal(features["token_ids"], expected)


@pytest.mark.slow
def test_predictions_come_back_in_input_order_and_metrics_are_unchanged(loaded):
    task, model = loaded
    examples = _examples()
    results = {}
    for buckets in ([], BUCKETS):
        dataset = task.eval_dataset(examples, 3, _data(buckets))
        outputs = evaluation.predict_outputs(task, model, dataset)
        results[tuple(buckets)] = (np.stack(outputs), task.evaluate(outputs, examples))
    fixed, bucketed = results[()], results[tuple(BUCKETS)]
    # Fixed length pads every batch to MAX_LEN; padding is masked out.
    np.testing.assert_allclose(bucketed[0], fixed[0], atol=1e-5)
    assert bucketed[1] == fixed[1]
    direct = model(task.tokenize({"text": tf.constant(examples.texts)}))
    np.testing.assert_allclose(bucketed[0], direct, atol=1e-5)


def test_prediction_reads_the_evaluation_data_in_one_pass():
    # Each pass over a tf.data pipeline sets up its graph anew (0.35 s for
    # MiniLM's), and a pass over a reader re-reads its file: tqdm.auto, given
    # an iterable, used to start a pass of its own that it never read.
    class Batches:
        passes = 0

        def __iter__(self):
            Batches.passes += 1  # at the start of the pass, as a tf.data iterator's set-up
            return iter(
                [({"x": tf.constant([[s], [s + 1]])}, tf.constant([s, s + 1])) for s in (0, 2)]
            )

    outputs = evaluation.predict_outputs(None, None, Batches(), forward=lambda f: f["x"] * 10)
    assert [int(o[0]) for o in outputs] == [0, 10, 20, 30]
    assert Batches.passes == 1


@pytest.mark.slow
def test_training_batches_are_bucketed_and_resume_at_the_same_batch(loaded):
    task, _ = loaded
    examples = _examples(40)
    data = _data(BUCKETS)
    stream = pipeline.train_dataset(task, examples, 4, data, seed=3)
    batches = list(stream.take(30))
    widths = {f["token_ids"].shape[1] for f, _ in batches}
    assert widths <= {4, 8, 16} and len(widths) > 1
    assert all(len(labels) == 4 for _, labels in batches)  # full batches only
    resumed = pipeline.train_dataset(task, examples, 4, data, seed=3, skip_steps=11)
    for (f, labels), (g, resumed_labels) in zip(batches[11:16], resumed.take(5)):
        np.testing.assert_array_equal(f["token_ids"], g["token_ids"])
        np.testing.assert_array_equal(labels, resumed_labels)


def test_fixed_length_option_pads_every_batch_to_max_length(loaded):
    task, _ = loaded
    stream = pipeline.train_dataset(task, _examples(), 4, _data([]), seed=3)
    assert {f["token_ids"].shape[1] for f, _ in stream.take(10)} == {MAX_LEN}


def test_serving_runs_each_length_bucket_apart_and_keeps_request_order(loaded):
    task, model = loaded
    texts = tf.constant(_examples().texts)
    features = task.tokenize({"text": texts})
    direct = model(features)
    calls = []

    def counting_model(part, training=False):
        calls.append(part["padding_mask"].numpy())
        return model(part, training=training)

    counting_model.output = model.output
    np.testing.assert_allclose(
        pipeline.bucketed_call(counting_model, features, BUCKETS), direct, atol=1e-5
    )
    # One call per bucket, each as wide as its longest row and no wider.
    assert len(calls) == len(BUCKETS) + 1
    assert [m.shape[1] for m in calls] == [m.sum(axis=1).max() for m in calls]
    assert sum(len(m) for m in calls) == len(texts)
    # A request of one text runs one bucket only, and in a graph too.
    calls.clear()
    one = {k: v[:1] for k, v in features.items()}
    np.testing.assert_allclose(
        pipeline.bucketed_call(counting_model, one, BUCKETS), direct[:1], atol=1e-5
    )
    assert len(calls) == 1
    graph = tf.function(lambda f: pipeline.bucketed_call(model, f, BUCKETS))
    np.testing.assert_allclose(graph(features), direct, atol=1e-5)
