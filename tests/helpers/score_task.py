"""A task written outside the package: one module (config + task + registration).

This is how a new task is written: nothing in `tftransfer/` knows about
`test_score_regression`; importing this module (`tftransfer train
--import=helpers.score_task`, or an installed package's `tftransfer.tasks`
entry point) makes it a `task.type`. It builds a model of its own on text
classification's data side, and does not pack: packing is something a task
opts into, not something a subclass must switch off.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tftransfer import config_checks, tasks
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

    def loss(self, labels, outputs):
        return tf.square(tf.cast(outputs[:, 0], tf.float32) - tf.cast(labels, tf.float32))

    def postprocess(self, outputs):
        return {"score": tf.cast(outputs[:, 0], tf.float32)}

    def evaluate(self, outputs, examples):
        predicted = np.asarray(outputs)[:, 0]
        gold = self._scores(examples)
        return {"mse": float(np.mean((predicted - gold) ** 2)), "examples": len(gold)}
