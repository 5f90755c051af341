"""Knowledge distillation (`transfer.strategy: distill`) on tiny models.

The losses against NumPy references for each task kind; the teacher's
outputs computed once, kept across a resume and a kill; a teacher with
another tokenizer than its student; unlabeled texts; the errors a user can
meet.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny

from tftransfer import backbones, configs, experiment, export, predict
from tftransfer.distillation import DistilledTask, Teacher, teacher_outputs
from tftransfer.tasks.multi_label_classification import (
    MultiLabelClassification,
    MultiLabelClassificationConfig,
)
from tftransfer.tasks.text_classification import TextClassification, TextClassificationConfig
from tftransfer.tasks.text_regression import TextRegression, TextRegressionConfig
from tftransfer.transfer import TransferConfig


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def tokenizer(tiny_preset):
    return backbones.load(tiny_preset)[1]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_preset, sentiment_tsv):
    """A tiny text classifier trained on the sentiment sentences."""
    params = tiny.classification_params(tiny_preset, sentiment_tsv)
    path = str(tmp_path_factory.mktemp("teacher") / "run")
    experiment.train(params, path)
    return path


def _student(tiny_preset, sentiment_tsv, teacher_dir, **overrides):
    params = tiny.classification_params(tiny_preset, sentiment_tsv)
    params.task.text_classification.labels = []  # taken from the teacher
    configs.override(
        params,
        {
            "transfer": {"strategy": "distill", "teacher": teacher_dir},
            "backbone": {"keep_layers": 1},
            "trainer": {"epochs": 0, "train_steps": 2, "checkpoint_every": 2},
            **overrides,
        },
        "test",
    )
    return params


def test_softmax_loss_is_the_temperature_scaled_kl(tokenizer):
    task = TextClassification(TextClassificationConfig(labels=["a", "b", "c"]), tokenizer)
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(4, 3)) * 3, rng.normal(size=(4, 3)) * 3
    t = 2.5
    p, q = _softmax(teacher / t), _softmax(student / t)
    expected = t * t * np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    got = task.distillation_loss(tf.constant(teacher, tf.float32), tf.constant(student), t)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    same = task.distillation_loss(tf.constant(teacher, tf.float32), tf.constant(teacher), t)
    np.testing.assert_allclose(same.numpy(), 0.0, atol=1e-5)


def test_multi_label_loss_is_the_mean_bernoulli_kl(tokenizer):
    config = MultiLabelClassificationConfig(labels=["a", "b", "c", "d"])
    task = MultiLabelClassification(config, tokenizer)
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2
    t = 2.0
    p, q = _sigmoid(teacher / t), _sigmoid(student / t)
    kl = p * (np.log(p) - np.log(q)) + (1 - p) * (np.log(1 - p) - np.log(1 - q))
    got = task.distillation_loss(tf.constant(teacher, tf.float32), tf.constant(student), t)
    np.testing.assert_allclose(got.numpy(), t * t * kl.mean(axis=-1), rtol=1e-4, atol=1e-6)


def test_multi_label_targets_are_the_teachers_logits_in_the_students_order(tokenizer):
    config = MultiLabelClassificationConfig(labels=["joy", "anger"])
    task = MultiLabelClassification(config, tokenizer)
    teacher = {"task": task.name, "labels": ["anger", "joy"]}
    targets = task.teacher_targets({"probabilities": np.array([[0.2, 0.9]])}, teacher)
    np.testing.assert_allclose(targets, [[np.log(9.0), np.log(0.25)]], rtol=1e-5)


def test_regression_trains_toward_the_teachers_normalised_scores(tokenizer):
    config = TextRegressionConfig(targets=["score"], target_mean=[2.0], target_std=[4.0])
    task = TextRegression(config, tokenizer)
    teacher = {"task": task.name, "labels": [], "targets": ["score"]}
    targets = task.teacher_targets({"scores": np.array([6.0, 0.0])}, teacher)
    np.testing.assert_allclose(targets, [[1.0], [-0.5]])
    outputs = tf.constant([[0.5], [0.5]])
    loss = task.distillation_loss(tf.constant(targets), outputs, temperature=3.0)
    np.testing.assert_allclose(loss.numpy(), [0.25, 1.0], rtol=1e-6)


def test_gold_and_soft_targets_mix_by_weight_and_unlabeled_texts_take_the_teachers(tokenizer):
    task = TextClassification(TextClassificationConfig(labels=["a", "b"]), tokenizer)
    cfg = TransferConfig(strategy="distill", teacher="t", distill_weight=0.3)
    student = DistilledTask(task, cfg, np.zeros((2, 2)), np.zeros(2, np.int32), [1.0, 0.0])
    teacher = tf.constant([[2.0, -1.0], [2.0, -1.0]])
    outputs = tf.constant([[0.0, 1.0], [0.0, 1.0]])
    labels = {"gold": tf.constant([1, 1]), "has_gold": tf.constant([1.0, 0.0]), "teacher": teacher}
    soft = task.distillation_loss(teacher, outputs, cfg.distill_temperature).numpy()
    gold = task.loss(tf.constant([1, 1]), outputs).numpy()
    got = student.loss(labels, outputs).numpy()
    np.testing.assert_allclose(got, [0.3 * soft[0] + 0.7 * gold[0], soft[1]], rtol=1e-6)


@pytest.mark.slow
def test_teacher_labels_texts_once_and_a_resumed_run_reads_them(
    tmp_path, monkeypatch, tiny_preset, sentiment_tsv, teacher_dir
):
    calls = []
    real = Teacher.predict
    monkeypatch.setattr(Teacher, "predict", lambda self, r: calls.append(len(r)) or real(self, r))
    params = _student(tiny_preset, sentiment_tsv, teacher_dir)
    run_dir = str(tmp_path / "student")
    experiment.train(params, run_dir)
    texts = len(set(open(sentiment_tsv, encoding="utf-8").read().splitlines()[1:]))
    assert sum(calls) == texts  # each distinct text once, duplicates read from the first
    assert params.task.text_classification.labels == ["negative", "positive"]
    calls.clear()
    configs.override(params, {"trainer": {"train_steps": 4, "checkpoint_every": 2}}, "test")
    experiment.train(params, run_dir)  # resumes at step 2
    assert calls == []
    assert tf.train.latest_checkpoint(f"{run_dir}/checkpoints").endswith("ckpt-4")


def test_a_killed_teacher_keeps_its_finished_shards(tmp_path, monkeypatch, teacher_dir):
    teacher = Teacher(teacher_dir)
    records = [{"text": f"{w} movie"} for w in tiny.WORDS[:10]]
    real = Teacher.predict
    calls = []

    def dies_on_third(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(Teacher, "predict", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        teacher_outputs.compute(teacher, records, str(tmp_path), batch_size=2, shard_size=4)
    calls.clear()
    monkeypatch.setattr(Teacher, "predict", lambda self, b: calls.append(len(b)) or real(self, b))
    resumed = teacher_outputs.compute(teacher, records, str(tmp_path), batch_size=2, shard_size=4)
    assert sum(calls) == 6  # the first shard of 4 was kept
    fresh = teacher_outputs.compute(teacher, records, None, batch_size=10)
    np.testing.assert_allclose(resumed["probabilities"], fresh["probabilities"], atol=1e-6)


@pytest.mark.slow
def test_a_student_with_another_tokenizer_trains_on_what_the_teacher_read(
    tmp_path, llama_dir, sentiment_tsv, teacher_dir
):
    params = configs.load(
        [],
        {
            "backbone": {"spec": llama_dir},
            "task": {"text_classification": {"max_seq_length": 16}},
            "data": {"train": {"path": sentiment_tsv, "text_column": "sentence"}},
            "transfer": {"strategy": "distill", "teacher": teacher_dir},
            "trainer": {"batch_size": 8, "train_steps": 3, "checkpoint_every": 3},
        },
    )
    run = experiment.build(params, model_dir=str(tmp_path / "student"))
    targets = np.stack([row["labels"]["teacher"].numpy() for row in run.encoded])
    texts = [{"text": t} for t in run.train_examples.texts]
    answers = predict.with_checkpoint(teacher_dir, texts)
    expected = np.log([a["probabilities"] for a in answers])
    np.testing.assert_allclose(targets, expected, atol=1e-5)
    experiment.fit(run, str(tmp_path / "student"))
    assert tf.train.latest_checkpoint(str(tmp_path / "student" / "checkpoints")).endswith("ckpt-3")


def test_new_unlabeled_texts_join_the_training_rows_without_gold(
    tmp_path, tiny_preset, sentiment_tsv, teacher_dir
):
    unlabeled = tmp_path / "unlabeled.txt"
    # "great movie" is a training sentence: it trains once, with its gold label.
    unlabeled.write_text("text\nlovely plot\ngreat movie\nboring day\nthe acting\n", "utf-8")
    params = _student(
        tiny_preset,
        sentiment_tsv,
        teacher_dir,
        data={"unlabeled": {"path": str(unlabeled), "format": "csv"}},
    )
    run = experiment.build(params)
    labelled = len(run.train_examples)
    has_gold = [float(row["labels"]["has_gold"]) for row in run.encoded]
    assert run.num_rows == labelled + 3
    assert has_gold == [1.0] * labelled + [0.0] * 3


def test_an_exported_teacher_answers_as_its_run(tmp_path, teacher_dir):
    export_dir = str(tmp_path / "export")
    export.export_run(teacher_dir, export_dir)
    records = [{"text": "great film"}, {"text": "boring and bad plot"}]
    from_run = Teacher(teacher_dir).predict(records)["probabilities"]
    from_export = Teacher(export_dir).predict(records)["probabilities"]
    np.testing.assert_allclose(from_export, from_run, atol=1e-5)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"transfer": {"teacher": ""}}, "set transfer.teacher"),
        ({"transfer": {"teacher": "/nonexistent"}}, "is not a folder"),
        (
            {"task": {"text_classification": {"labels": ["negative", "neutral", "positive"]}}},
            "the student.s are",
        ),
    ],
)
def test_distillation_errors_say_what_to_fix(
    override, message, tiny_preset, sentiment_tsv, teacher_dir
):
    params = _student(tiny_preset, sentiment_tsv, teacher_dir)
    with pytest.raises(configs.ConfigError, match=message):
        configs.override(params, override, "test")
        configs.validate(params)
        experiment.build(params)


def test_a_bad_precision_variable_fails_before_the_teacher_runs(
    monkeypatch, tiny_preset, sentiment_tsv, teacher_dir
):
    calls = []
    monkeypatch.setattr(Teacher, "predict", lambda self, r: calls.append(len(r)))
    monkeypatch.setenv("TFTRANSFER_AUTO_PRECISION", "int8")
    params = _student(tiny_preset, sentiment_tsv, teacher_dir)
    configs.override(params, {"runtime": {"mixed_precision": "auto"}}, "test")
    with pytest.raises(configs.ConfigError, match="TFTRANSFER_AUTO_PRECISION='int8'"):
        experiment.build(params)
    assert calls == []


def test_a_task_that_cannot_learn_from_a_teacher_says_so(tmp_path, tiny_preset, teacher_dir):
    conll = tiny.write_conll(str(tmp_path / "train.conll"))
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"type": "token_classification"},
            "data": {"train": {"path": conll}},
            "transfer": {"strategy": "distill", "teacher": teacher_dir},
        },
    )
    with pytest.raises(configs.ConfigError, match="token_classification task cannot learn"):
        experiment.build(params)


@pytest.mark.slow
def test_a_compare_grid_asks_the_teacher_about_each_text_once(
    tmp_path, monkeypatch, tiny_preset, sentiment_tsv, teacher_dir
):
    from tftransfer import compare

    calls = []
    real = Teacher.predict
    monkeypatch.setattr(Teacher, "predict", lambda self, r: calls.append(len(r)) or real(self, r))
    params = _student(tiny_preset, sentiment_tsv, teacher_dir)
    out = str(tmp_path / "grid")
    grid = compare.Comparison(
        params, out, ["distill"], ["16", "all"], seeds=1, cell_processes=False
    )
    summary = grid.run()
    assert [c["strategy"] for c in summary["cells"]] == ["distill", "distill"]
    texts = len(set(grid.train_examples.texts))
    assert sum(calls) == texts  # two distill cells, each text labelled once
    assert os.listdir(os.path.join(out, "teacher_outputs"))


def test_stored_outputs_are_found_for_every_text(tmp_path, monkeypatch, teacher_dir):
    # One digest in 256 ends in a NUL byte; stored as NumPy bytes it lost it.
    texts = (f"movie {i}" for i in range(10_000))
    ending_in_nul = next(t for t in texts if teacher_outputs.record_key({"text": t})[-1] == 0)
    records = [{"text": ending_in_nul}, {"text": "great film"}]
    teacher = Teacher(teacher_dir)
    teacher_outputs.compute(teacher, records, str(tmp_path), batch_size=2)
    calls = []
    real = Teacher.predict
    monkeypatch.setattr(Teacher, "predict", lambda self, b: calls.append(len(b)) or real(self, b))
    teacher_outputs.compute(teacher, records, str(tmp_path), batch_size=2)
    assert calls == []
    # A worker that is not the chief reads the store and writes nothing to it.
    shards = sorted(os.listdir(tmp_path / teacher.fingerprint))
    more = records + [{"text": "boring plot"}]
    teacher_outputs.compute(teacher, more, str(tmp_path), batch_size=2, write=False)
    assert calls == [1] and sorted(os.listdir(tmp_path / teacher.fingerprint)) == shards
