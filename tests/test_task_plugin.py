"""A task added from outside the package: one module (config + task + registration).

This is how a new task is written: nothing in `tftransfer/` knows about
`test_score_regression`, yet the CLI's config loader, training (with a metric
where lower is better), evaluation, export and predict all run it.
"""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer import config_checks, configs, experiment, export, predict, tasks
from tftransfer.data.readers import DataError
from tftransfer.models import heads
from tftransfer.tasks.text_classification import TextClassification


@dataclasses.dataclass
class ScoreRegressionConfig(tasks.TaskConfig):
    """Predicts one number per text.

    Attributes:
        max_seq_length: tokens per text.
        dropout: dropout before the output layer.
    """

    # Each field declares what it accepts; `configs.validate` checks it.
    max_seq_length: int = config_checks.bounded(32, low=2, high=512)
    dropout: float = config_checks.bounded(0.0, low=0.0, below=1.0)
    pooling: str = config_checks.one_of("mean", ("mean", "cls"))
    text_pair: bool = False


@tasks.register("test_score_regression", ScoreRegressionConfig)
class ScoreRegression(TextClassification):
    """Text classification's tokenization and pooling; a scalar output and MSE."""

    primary_metric = tasks.Metric("mse", lower_is_better=True)

    @property
    def labels(self):
        return []

    def prepare(self, train_examples):
        self._scores(train_examples)

    def _scores(self, examples):
        try:
            return np.asarray([float(v) for v in examples.labels], np.float32)
        except ValueError as e:
            raise DataError(f"scores must be numbers: {e}") from e

    def validate_examples(self, examples):
        self._scores(examples)

    def raw_dataset(self, examples, with_labels=True):
        columns = {"text": examples.texts}
        if with_labels:
            columns["label"] = self._scores(examples)
        return tf.data.Dataset.from_tensor_slices(columns)

    def build_model(self, backbone):
        from tftransfer.backbones import Backbone

        backbone = Backbone.wrap(backbone)
        inputs = backbone.inputs()
        sequence = backbone.outputs(inputs)["sequence_output"]
        mask = keras.ops.expand_dims(keras.ops.cast(inputs["padding_mask"], "float32"), -1)
        pooled = keras.ops.sum(sequence * mask, axis=1) / keras.ops.sum(mask, axis=1)
        score = heads.dense_head(pooled, 1, self.config.dropout, name="score")
        return keras.Model(inputs, score, name="score_regressor")

    def build_packed_model(self, model, backbone):
        return None

    def serving_call(self, model, backbone):
        return tasks.Task.serving_call(self, model, backbone)

    def loss(self, labels, outputs):
        return tf.square(tf.cast(outputs[:, 0], tf.float32) - tf.cast(labels, tf.float32))

    def postprocess(self, outputs):
        return {"score": tf.cast(outputs[:, 0], tf.float32)}

    def evaluate(self, outputs, examples):
        predicted = np.asarray(outputs)[:, 0]
        gold = self._scores(examples)
        return {"mse": float(np.mean((predicted - gold) ** 2)), "examples": len(gold)}


@pytest.fixture(scope="module")
def scores_tsv(tmp_path_factory):
    from helpers import tiny

    path = tmp_path_factory.mktemp("scores") / "scores.tsv"
    lines = ["sentence\tscore"]
    for _ in range(4):
        lines += [f"{p}\t1.0" for p in tiny.POSITIVE] + [f"{n}\t-1.0" for n in tiny.NEGATIVE]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_a_task_from_one_module_trains_exports_and_predicts(tiny_preset, scores_tsv, tmp_path):
    config = tmp_path / "score.yaml"
    config.write_text(
        "task:\n  type: test_score_regression\n"
        f"backbone:\n  spec: {tiny_preset}\n"
        "data:\n"
        f"  train: {{path: {scores_tsv}, text_column: sentence, label_column: score}}\n"
        f"  validation: {{path: {scores_tsv}, text_column: sentence, label_column: score}}\n"
        "trainer: {batch_size: 8, epochs: 4, eval_every: 7, learning_rate: 0.003, seed: 3}\n"
    )
    params = configs.load([str(config)])
    assert isinstance(params.task.get(), ScoreRegressionConfig)
    run = str(tmp_path / "run")
    metrics = experiment.train(params, run)

    # Lower is better: the best checkpoint is the one with the smallest error.
    history = experiment.history.read(run)
    errors = {r["step"]: r["mse"] for r in history if "mse" in r}
    assert len(errors) >= 3
    assert metrics["checkpoint_step"] == min(errors, key=errors.get)
    assert metrics["mse"] < 1.0  # better than predicting 0 for every text
    # Evaluating the run again scores what training scored: the task has no
    # packed model, so evaluation runs unpacked like its training did.
    again = experiment.evaluate(run)
    assert again["mse"] == pytest.approx(metrics["mse"], abs=1e-5)

    path = export.export_run(run, str(tmp_path / "serving"))
    assert export.read_metadata(path)["task"] == "test_score_regression"
    records = [{"text": "great movie"}, {"text": "awful movie"}]
    served = predict.with_saved_model(path, records)
    in_process = predict.with_checkpoint(run, records)
    np.testing.assert_allclose(
        [r["score"] for r in served], [r["score"] for r in in_process], atol=1e-5
    )
    assert served[0]["score"] > served[1]["score"]
    assert os.path.exists(os.path.join(run, "training_curves.png"))


def test_its_declared_fields_are_checked_and_unknown_tasks_list_it(tiny_preset):
    with pytest.raises(configs.ConfigError, match=r"task.test_score_regression.dropout"):
        configs.load(
            [],
            {"task": {"type": "test_score_regression", "test_score_regression": {"dropout": 2}}},
        )
    with pytest.raises(configs.ConfigError, match=r"test_score_regression"):
        configs.load([], {"task": {"type": "nope"}})


def test_a_task_whose_fields_declare_nothing_is_not_registered():
    @dataclasses.dataclass
    class Loose(tasks.TaskConfig):
        alpha: float = 0.5

    with pytest.raises(TypeError, match="Loose fields alpha declare no range or choices"):
        tasks.register("test_loose", Loose)
    assert "test_loose" not in tasks.registered()
