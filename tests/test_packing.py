"""Sequence packing: placement, equality with the unpacked model, training."""

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import gradients, tiny

from tftransfer import backbones, configs, evaluation, experiment, loaded_run, run_setup
from tftransfer.data import packing, pipeline, readers
from tftransfer.models.packed_text_classifier import PackedTextClassifier
from tftransfer.tasks.text_classification import TextClassification, TextClassificationConfig

TEXTS = [
    "great movie",
    "i hate this film it was the worst plot ever and the acting was awful",
    "fun",
    "what a lovely day",
    "not good at all, really boring and sad",
    "best acting ever",
    "the story was bad",
    "i love this film",
    "hello world",
]


def test_first_fit_decreasing_places_every_example_once_within_rows():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 33, size=200)
    row, column, count = (t.numpy() for t in packing.first_fit_decreasing(lengths, 32))
    occupied = np.zeros((count, 32), int)
    for n, r, c in zip(lengths, row, column):
        assert c + n <= 32
        occupied[r, c : c + n] += 1
    assert occupied.max() == 1  # no token slot used twice
    assert occupied.sum() == lengths.sum()
    # First-fit decreasing uses at most 11/9 of the optimum (+ 1 row).
    assert count <= np.ceil(lengths.sum() / 32) * 11 / 9 + 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="more tokens than a packed row"):
        packing.first_fit_decreasing(np.array([33]), 32)


def _task(tiny_preset, pooling, pairs=False):
    backbone, tokenizer = backbones.load(tiny_preset)
    cfg = TextClassificationConfig(max_seq_length=32, dropout=0.0, pooling=pooling, text_pair=pairs)
    task = TextClassification(cfg, tokenizer)
    n = len(TEXTS)
    examples = readers.Examples(
        texts=TEXTS,
        labels=["pos", "neg"] * (n // 2) + ["pos"] * (n % 2),
        text_pairs=list(reversed(TEXTS)) if pairs else None,
        sources=[f"test:{i}" for i in range(n)],
    )
    task.prepare(examples)
    return task, backbone, examples


def _batch(task, examples):
    rows = pipeline.encoded_dataset(task, examples, configs.DataConfig())
    return next(iter(rows.batch(len(examples))))


@pytest.mark.parametrize(
    "pooling,pairs", [("pooled", False), ("mean", False), ("cls", True), ("last", False)]
)
def test_packed_model_equals_the_unpacked_model(tiny_preset, pooling, pairs):
    task, backbone, examples = _task(tiny_preset, pooling, pairs)
    model = task.build_model(backbone)
    packed_model = task.build_packed_model(model, backbone)
    rows = dict(_batch(task, examples))
    labels = rows.pop("labels")
    packed, packed_labels = packing.pack_batch(rows, labels)
    # Fewer rows than examples, so examples really share rows.
    assert packed["token_ids"].shape[0] < len(examples)
    assert packed["token_ids"].shape[0] % packing.row_multiple(len(examples)) == 0
    np.testing.assert_array_equal(packed_labels, labels)
    np.testing.assert_allclose(packed_model(packed), model(rows), atol=2e-5)


def test_packed_row_counts_are_exact_without_xla_and_rounded_with_it(tiny_preset):
    task, _, examples = _task(tiny_preset, "pooled")
    rows = dict(_batch(task, examples))
    labels = rows.pop("labels")
    rows = {k: tf.concat([v] * 3, 0) for k, v in rows.items()}  # 27 examples
    labels = tf.concat([labels] * 3, 0)
    lengths = tf.reduce_sum(rows["padding_mask"], axis=1)
    needed = int(packing.first_fit_decreasing(lengths, rows["token_ids"].shape[1])[2])
    multiple = packing.row_multiple(27)
    exact, _ = packing.pack_batch(rows, labels, static_shapes=False)
    rounded, _ = packing.pack_batch(rows, labels, static_shapes=True)
    assert exact["token_ids"].shape[0] == needed
    assert rounded["token_ids"].shape[0] == -(-needed // multiple) * multiple


def test_packed_training_step_matches_the_unpacked_one(tiny_preset):
    task, backbone, examples = _task(tiny_preset, "pooled")
    model = task.build_model(backbone)
    packed_model = task.build_packed_model(model, backbone)
    rows = dict(_batch(task, examples))
    labels = rows.pop("labels")
    packed, _ = packing.pack_batch(rows, labels)
    variables = model.trainable_variables
    _, plain = gradients.loss_and_gradients(task, model, rows, labels, variables)
    _, from_packed = gradients.loss_and_gradients(task, packed_model, packed, labels, variables)
    gradients.assert_same(plain, from_packed, variables)


def _train_weights(params, model_dir, **data):
    params.override({"data": data})
    metrics = experiment.train(params, model_dir)
    return metrics, loaded_run.LoadedRun(model_dir, "latest").model.get_weights()


@pytest.mark.slow
def test_training_with_packing_trains_the_same_model(tiny_params, tmp_path):
    # Fixed length batches the same examples per step as packing does (in
    # shuffle order) and nothing is dropped out, so both runs must end in
    # the same weights. (Packed positions come as gradient slices with
    # repeated rows where the unpacked ones are dense: this also checks that
    # the optimizer treats the two alike.)
    runs = {}
    for packing_on in (False, True):
        tiny_params.override({"data": {"bucket_boundaries": [], "packing": packing_on}})
        model_dir = str(tmp_path / f"packing_{packing_on}")
        metrics = experiment.train(tiny_params, model_dir)
        runs[packing_on] = metrics, loaded_run.LoadedRun(model_dir, "latest").model.get_weights()
    assert configs.load([str(tmp_path / "packing_True" / "params.yaml")]).data.packing
    for plain, packed in zip(runs[False][1], runs[True][1]):
        np.testing.assert_allclose(packed, plain, atol=1e-5)
    assert runs[True][0]["accuracy"] == runs[False][0]["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "override,packs",
    [
        ({}, True),
        ({"runtime": {"distribution_strategy": "mirrored"}}, False),
        ({"task": {"text_classification": {"long_texts": "windows"}}}, False),
        ({"data": {"packing": False}}, False),
    ],
    ids=["one-replica", "two-replicas", "windows", "off"],
)
def test_unset_packing_packs_where_it_can_and_records_it(tiny_params, override, packs):
    # Users of the shipped configs get the fast path without asking, and a
    # setting that cannot pack trains unpacked instead of failing.
    tiny_params.override(override)
    assert tiny_params.data.packing is None or override
    run = experiment.build(tiny_params)
    assert isinstance(run.train_model, PackedTextClassifier) == packs
    assert run.packing is packs
    features, _ = next(iter(run.train_dataset()))
    assert ("example_ids" in features) == packs
    # The config keeps what was set: the same one falls back on two replicas.
    assert run.params.data.packing == tiny_params.data.packing


@pytest.fixture(scope="module")
def packed_run(tiny_preset, sentiment_tsv, tmp_path_factory):
    """A run of the tiny experiment as configured (packing unset: it packs)."""
    model_dir = tmp_path_factory.mktemp("packed") / "run"
    experiment.train(tiny.classification_params(tiny_preset, sentiment_tsv), str(model_dir))
    return model_dir


@pytest.mark.slow
def test_the_run_records_whether_it_packed(packed_run):
    header = (packed_run / "params.yaml").read_text()
    assert "# data.packing: on (data.packing unset" in header
    summary = json.loads((packed_run / "run_summary.json").read_text())
    assert summary["packed"] is True
    assert configs.load([str(packed_run / "params.yaml")]).data.packing is None


def test_packing_refuses_more_than_one_replica(tiny_params, tmp_path):
    tiny_params.override({"data": {"packing": True}})
    tiny_params.override({"runtime": {"distribution_strategy": "mirrored"}})
    with pytest.raises(ValueError, match="one replica"):
        experiment.train(tiny_params, str(tmp_path / "run"))


@pytest.mark.parametrize("pairs", [False, True])
def test_serving_packs_a_request_and_keeps_request_order(tiny_preset, monkeypatch, pairs):
    task, backbone, _ = _task(tiny_preset, "pooled", pairs)
    model = task.build_model(backbone)
    packed = []
    pack = packing.pack

    def recording_pack(features, multiple=1):
        packed.append(features["token_ids"].shape[0])
        return pack(features, multiple)

    monkeypatch.setattr(packing, "pack", recording_pack)
    inputs = {"text": tf.constant(TEXTS)}
    if pairs:
        inputs["text_pair"] = tf.constant(list(reversed(TEXTS)))
    features = task.tokenize(inputs)
    direct = model(features)
    serve = tf.function(task.serving_call(model, backbone), autograph=False)
    np.testing.assert_allclose(serve(features), direct, atol=2e-5)
    assert packed, "the request did not go through packing"
    # These texts share rows when packed.
    rows = pack(pipeline.trim_to_longest(features))["token_ids"].shape[0]
    assert rows < len(TEXTS)
    one = {k: v[3:4] for k, v in features.items()}
    np.testing.assert_allclose(serve(one), direct[3:4], atol=2e-5)


@pytest.mark.slow
def test_a_packed_run_evaluates_packed_and_scores_as_the_plain_model(packed_run, monkeypatch):
    # Evaluation during training and `tftransfer evaluate` pack in runs that
    # pack: faster, with the plain model's outputs (and so its metrics).
    model_dir = str(packed_run)
    loaded = loaded_run.LoadedRun(model_dir)
    examples = run_setup.read_split(loaded.params, "validation")
    task, model = loaded.task, loaded.model
    outputs = {}
    for packs in (False, True):
        data = task.eval_dataset(examples, 8, loaded.params.data.replace(packing=packs))
        forward = evaluation.packed_forward(task, model, loaded.backbone) if packs else None
        outputs[packs] = evaluation.predict_outputs(task, model, data, forward=forward)
    np.testing.assert_allclose(np.stack(outputs[True]), np.stack(outputs[False]), atol=2e-5)
    built = []
    packed_forward = evaluation.packed_forward
    monkeypatch.setattr(
        evaluation, "packed_forward", lambda *args: built.append(packed_forward(*args)) or built[-1]
    )
    metrics = loaded_run.evaluate(model_dir)
    assert built and built[-1] is not None, "evaluate did not pack"
    assert metrics["accuracy"] == task.evaluate(outputs[False], examples)["accuracy"]
