"""Text regression: one or more numbers per text or text pair (ratings, similarity).

A linear head on the pooled text gives one output per target, trained with
mean squared error (or Huber). Targets can be normalised to mean 0 and
standard deviation 1 on the training data; the mean and deviation are saved
with the model, and evaluation, `predict` and the export answer on the
original scale.

Everything else (tokenization, sentence pairs, pooling, packing, long-text
windows) is text classification's.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.text_regression import TextRegression, TextRegressionConfig
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = TextRegressionConfig(targets=["stars"], target_mean=[3.0], target_std=[1.5])
>>> task = TextRegression(cfg, tokenizer)
>>> model = task.build_model(backbone)
>>> answers = task.postprocess(model(task.tokenize({"text": tf.constant(["what a day"])})))
>>> sorted(answers), answers["scores"].shape
(['scores'], TensorShape([1, 1]))
"""

import dataclasses
from typing import List

import numpy as np
import tensorflow as tf
from scipy import stats

from tftransfer.config_checks import bounded, one_of, text
from tftransfer.data import readers
from tftransfer.data.readers import DataError
from tftransfer.tasks import base, registry
from tftransfer.tasks.text_classification import TextClassification
from tftransfer.tasks.text_classification_config import TextInputConfig

LOSSES = ("mse", "huber")


@dataclasses.dataclass
class TextRegressionConfig(TextInputConfig):
    """Text regression: one or several numbers per text.

    The text fields are `TextInputConfig`'s (shared with text and
    multi-label classification); the target fields are its own.

    Attributes:
        targets: names of the predicted numbers, in output order; empty = the
            data's `label_columns`, else `[label_column]`.
        loss: `mse` or `huber` (less pull from outliers).
        huber_delta: where the Huber loss turns from squared to linear, in
            (normalised) target units.
        normalize_targets: train on (y - mean) / std of the training data.
        target_mean, target_std: the normalisation, found on the training
            data and saved with the model (empty = none yet).
    """

    # Written by earlier versions, which shared text classification's config.
    RETIRED_FIELDS = ("labels", "class_weights", "balanced_class_weights")

    targets: List[str] = text(default_factory=list)
    loss: str = one_of("mse", LOSSES)
    huber_delta: float = bounded(1.0, above=0.0)
    normalize_targets: bool = True
    target_mean: List[float] = bounded(default_factory=list)
    target_std: List[float] = bounded(default_factory=list, above=0.0)


def _pearson(x, y):
    # A constant prediction (an untrained model) has no correlation: 0, not NaN.
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(stats.pearsonr(x, y)[0])


def _spearman(x, y):
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(stats.spearmanr(x, y)[0])


def regression_report(gold, predicted, names):
    """Pearson, Spearman, MSE and MAE per target and their means over targets.

    Args:
        gold, predicted: `[examples, targets]` on the original scale.
        names: the target names.
    """
    gold = np.asarray(gold, np.float64)
    predicted = np.asarray(predicted, np.float64)
    per_target = {}
    for i, name in enumerate(names):
        g, p = gold[:, i], predicted[:, i]
        per_target[name] = {
            "pearson": _pearson(p, g),
            "spearman": _spearman(p, g),
            "mse": float(np.mean((p - g) ** 2)),
            "mae": float(np.mean(np.abs(p - g))),
        }
    means = {k: float(np.mean([t[k] for t in per_target.values()])) for k in per_target[names[0]]}
    return {"examples": int(len(gold)), **means, "per_target": per_target}


@registry.register("text_regression", TextRegressionConfig)
class TextRegression(TextClassification):
    """Predicts `config.targets` numbers for a text (or a pair of texts).

    Args:
        config: a `TextRegressionConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
    """

    primary_metric = base.Metric("pearson")
    summary_metrics = ("examples", "pearson", "spearman", "mse", "mae")

    @classmethod
    def read(cls, spec, need_labels=True):
        return readers.read(spec, need_labels=need_labels, labels="float")

    @property
    def labels(self):
        return []

    @property
    def num_outputs(self):
        return len(self.config.targets)

    # -- data -------------------------------------------------------------
    def prepare(self, train_examples):
        self.prepare_text_pair(train_examples)
        width = len(train_examples.labels[0]) if len(train_examples) else 0
        if not self.config.targets:
            names = ["score"] if width == 1 else [f"score_{i}" for i in range(width)]
            self.config.targets = list(train_examples.label_names or names)
        values = self._values(train_examples)
        if self.config.normalize_targets and not self.config.target_mean:
            std = values.std(axis=0)
            if np.any(std == 0):
                constant = [t for t, s in zip(self.config.targets, std) if s == 0]
                raise DataError(
                    f"regression targets {', '.join(constant)} have one value in all training "
                    "examples: nothing to learn (or set normalize_targets=false)"
                )
            self.config.target_mean = [round(float(m), 6) for m in values.mean(axis=0)]
            self.config.target_std = [round(float(s), 6) for s in std]

    def _values(self, examples):
        """`[examples, targets]` float64 raw targets; a wrong count is an error (file:line)."""
        k = len(self.config.targets)
        for values, where in zip(examples.labels, examples.sources):
            if len(values) != k:
                raise DataError(f"{where}: {len(values)} targets, the model predicts {k}")
        return np.asarray(examples.labels, np.float64).reshape(len(examples), k)

    def _scale(self):
        k = len(self.config.targets)
        if self.config.normalize_targets and self.config.target_mean:
            return np.asarray(self.config.target_mean), np.asarray(self.config.target_std)
        return np.zeros(k), np.ones(k)

    def encode_labels(self, examples):
        """Targets as the model learns them: normalised float32 `[examples, targets]`."""
        mean, std = self._scale()
        return ((self._values(examples) - mean) / std).astype(np.float32)

    # -- model ------------------------------------------------------------
    def loss(self, labels, outputs):
        error = tf.cast(outputs, tf.float32) - tf.cast(labels, tf.float32)
        if self.config.loss == "huber":
            delta = self.config.huber_delta
            small = tf.abs(error) <= delta
            per_target = tf.where(small, 0.5 * error**2, delta * (tf.abs(error) - 0.5 * delta))
        else:
            per_target = tf.square(error)
        return tf.reduce_mean(per_target, axis=-1)

    # -- distillation -----------------------------------------------------
    def teacher_targets(self, teacher_outputs, teacher):
        """The teacher's scores, normalised as this model learns its targets."""
        scores = np.asarray(teacher_outputs["scores"], np.float64)
        scores = scores.reshape(len(scores), -1)[:, self.teacher_columns(teacher, "targets")]
        mean, std = self._scale()
        return ((scores - mean) / std).astype(np.float32)

    def distillation_loss(self, targets, outputs, temperature):
        """The task's own loss (`task.text_regression.loss`) against the teacher's scores."""
        del temperature  # scores have no softmax to soften
        return self.loss(targets, outputs)

    # -- answers ----------------------------------------------------------
    def postprocess(self, outputs):
        mean, std = self._scale()
        scores = tf.cast(outputs, tf.float32) * tf.constant(std, tf.float32) + tf.constant(
            mean, tf.float32
        )
        return {"scores": scores}

    def evaluate(self, outputs, examples):
        mean, std = self._scale()
        predicted = np.stack(outputs).astype(np.float64) * std + mean
        return regression_report(self._values(examples), predicted, self.config.targets)

    def export_metadata(self):
        return {"targets": list(self.config.targets)}
