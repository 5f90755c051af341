"""Multi-label text classification: any number of labels per text (emotions, topics).

One sigmoid output per label, trained with binary cross-entropy. A label is
predicted when its probability reaches its decision threshold; thresholds are
tuned on the validation data after training (per label, or one for all) and
saved with the model, so evaluation, `predict` and the export apply the same
ones. A text may have no label at all, in training data and in answers.

Everything else (tokenization, sentence pairs, pooling, packing, long-text
windows) is text classification's.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.multi_label_classification import (
...     MultiLabelClassification,
...     MultiLabelClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = MultiLabelClassificationConfig(labels=["joy", "anger", "fear"])
>>> cfg.thresholds = [0.0, 0.0, 1.0]  # always, always, never
>>> task = MultiLabelClassification(cfg, tokenizer)
>>> model = task.build_model(backbone)
>>> answers = task.postprocess(model(task.tokenize({"text": tf.constant(["what a day"])})))
>>> sorted(answers), answers["labels"].numpy().tolist()
(['label_ids', 'labels', 'probabilities'], [[b'joy', b'anger']])
"""

import dataclasses
from typing import List

import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.config_checks import bounded, one_of, text
from tftransfer.data import readers
from tftransfer.data.readers import DataError
from tftransfer.metrics import multi_label as multi_label_metrics
from tftransfer.tasks import base, registry
from tftransfer.tasks.text_classification import TextClassification
from tftransfer.tasks.text_classification_config import TextInputConfig

THRESHOLD_TUNING = ("per_label", "shrunk", "global", "none")


@dataclasses.dataclass
class MultiLabelClassificationConfig(TextInputConfig):
    """Multi-label text classification.

    The text fields are `TextInputConfig`'s (shared with text classification
    and text regression); the label and threshold fields are its own.

    Attributes:
        labels: the label names in id order; empty = the data's
            `label_columns`, else every label seen in training (sorted).
        threshold: the decision threshold of every label until tuned.
        thresholds: one threshold per label; set by tuning and saved with
            the model (empty = `threshold` for all).
        threshold_tuning: after training, choose thresholds that maximise F1
            on the validation data: `per_label`; `shrunk` (per label, pulled
            towards the global threshold the fewer validation positives a
            label has, as much as cross-validation on the validation data
            says carries over); `global` (one for all, the best macro-F1);
            or `none` (keep `threshold`/`thresholds`).
        positive_weights: per-label weight of the positive term of the
            loss (more recall on rare labels); empty = 1.
    """

    # Written by earlier versions, which shared text classification's config.
    RETIRED_FIELDS = ("class_weights", "balanced_class_weights")

    labels: List[str] = text(default_factory=list)
    threshold: float = bounded(0.5, low=0.0, high=1.0)
    thresholds: List[float] = bounded(default_factory=list, low=0.0, high=1.0)
    threshold_tuning: str = one_of("per_label", THRESHOLD_TUNING)
    positive_weights: List[float] = bounded(default_factory=list, low=0.0)


@registry.register("multi_label_classification", MultiLabelClassificationConfig)
class MultiLabelClassification(TextClassification):
    """Tags a text (or a pair of texts) with any subset of `config.labels`.

    Args:
        config: a `MultiLabelClassificationConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
    """

    # Chosen at the thresholds tuned on that same validation pass: the
    # final model is used with tuned thresholds, so that is what to compare.
    primary_metric = base.Metric("tuned_macro_f1")
    summary_metrics = ("examples", "micro_f1", "macro_f1", "tuned_macro_f1")

    @classmethod
    def read(cls, spec, need_labels=True):
        return readers.read(spec, need_labels=need_labels, labels="multi")

    # -- data -------------------------------------------------------------
    def prepare(self, train_examples):
        self.prepare_text_pair(train_examples)
        if not self.config.labels:
            found = train_examples.label_names or sorted(
                {label for labels in train_examples.labels for label in labels}
            )
            if all(v.isdigit() for v in found):
                found = sorted(found, key=int)
            self.config.labels = list(found)
        if not self.labels:
            raise DataError("multi-label classification found no labels in the training data")
        k = len(self.labels)
        for name in ("thresholds", "positive_weights"):
            values = getattr(self.config, name)
            if values and len(values) != k:
                raise DataError(f"task.{self.name}.{name} has {len(values)} values for {k} labels")

    def encode_labels(self, examples):
        """`[examples, labels]` 0/1 float32; unknown names are an error (file:line)."""
        index = {name: i for i, name in enumerate(self.labels)}
        hot = np.zeros((len(examples), len(index)), np.float32)
        for row, (labels, where) in enumerate(zip(examples.labels, examples.sources)):
            for label in labels:
                if label in index:
                    hot[row, index[label]] = 1.0
                elif label.isdigit() and int(label) < len(index):
                    hot[row, int(label)] = 1.0  # ids, as GoEmotions' files have
                else:
                    raise DataError(
                        f"{where}: unknown label `{label}` "
                        f"(the model knows: {', '.join(self.labels)})"
                    )
        return hot

    # -- model ------------------------------------------------------------
    def loss(self, labels, outputs):
        labels = tf.cast(labels, tf.float32)
        logits = tf.cast(outputs, tf.float32)
        if self.config.positive_weights:
            weights = tf.constant(self.config.positive_weights, tf.float32)
            per_label = tf.nn.weighted_cross_entropy_with_logits(labels, logits, weights)
        else:
            per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        # The mean over labels, as PyTorch's BCEWithLogitsLoss (HF's multi-label loss).
        return tf.reduce_mean(per_label, axis=-1)

    def teacher_targets(self, teacher_outputs, teacher):
        """The teacher's per-label logits, from its probabilities."""
        probabilities = np.asarray(teacher_outputs["probabilities"], np.float64)
        probabilities = np.clip(probabilities[:, self.teacher_columns(teacher)], 1e-7, 1 - 1e-7)
        return (np.log(probabilities) - np.log1p(-probabilities)).astype(np.float32)

    def distillation_loss(self, targets, outputs, temperature):
        """`T^2` times the mean over labels of the KL between the two Bernoullis.

        Cross-entropy against the teacher's softened probabilities, less
        their entropy: the same gradients, and zero when the models agree.
        """
        soft = tf.sigmoid(tf.cast(targets, tf.float32) / temperature)
        student = tf.cast(outputs, tf.float32) / temperature
        teacher = tf.cast(targets, tf.float32) / temperature
        cross = tf.nn.sigmoid_cross_entropy_with_logits(labels=soft, logits=student)
        entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=soft, logits=teacher)
        return temperature**2 * tf.reduce_mean(cross - entropy, axis=-1)

    @property
    def thresholds(self):
        """`[labels]` decision thresholds in use."""
        if self.config.thresholds:
            return [float(t) for t in self.config.thresholds]
        return [float(self.config.threshold)] * len(self.labels)

    # -- answers ----------------------------------------------------------
    def postprocess(self, outputs):
        """Per-label probabilities, and the predicted labels of each text.

        A serving output must be a dense tensor, so `labels` (names) and
        `label_ids` hold each text's predicted labels in id order, padded
        with "" and -1 to the most any text of the request has.
        """
        probabilities = tf.sigmoid(tf.cast(outputs, tf.float32))
        chosen = probabilities >= tf.constant(self.thresholds, tf.float32)
        ids = tf.broadcast_to(tf.range(len(self.labels), dtype=tf.int32), tf.shape(chosen))
        label_ids = tf.ragged.boolean_mask(ids, chosen)
        return {
            "probabilities": probabilities,
            "label_ids": label_ids.to_tensor(default_value=-1),
            "labels": tf.gather(tf.constant(self.labels), label_ids).to_tensor(default_value=""),
        }

    @classmethod
    def format_result(cls, record, outputs):
        result = super().format_result(record, outputs)
        result["labels"] = [name for name in result["labels"] if name]
        result["label_ids"] = [i for i in result["label_ids"] if i >= 0]
        return result

    def evaluate(self, outputs, examples):
        probabilities = 1.0 / (1.0 + np.exp(-np.stack(outputs).astype(np.float64)))
        gold = self.encode_labels(examples)
        metrics = multi_label_metrics.report(gold, probabilities, self.thresholds, self.labels)
        mode = self.config.threshold_tuning
        mode = "per_label" if mode == "none" else mode
        tuned = multi_label_metrics.tune_thresholds(gold, probabilities, mode)
        at_tuned = multi_label_metrics.report(gold, probabilities, tuned, self.labels)
        metrics["tuned_thresholds"] = [float(t) for t in tuned]
        for key in ("macro_f1", "micro_f1", "weighted_f1", "exact_match"):
            metrics[f"tuned_{key}"] = at_tuned[key]
        return metrics

    def calibrate(self, validation_metrics):
        if self.config.threshold_tuning == "none" or "tuned_thresholds" not in validation_metrics:
            return False
        self.config.thresholds = list(validation_metrics["tuned_thresholds"])
        logging.info(
            f"Decision thresholds tuned on validation ({self.config.threshold_tuning}): "
            f"macro-F1 {validation_metrics['macro_f1']:.4f} at the previous thresholds, "
            f"{validation_metrics['tuned_macro_f1']:.4f} at the tuned ones."
        )
        return True

    def export_metadata(self):
        return {"thresholds": self.thresholds, "multi_label": True}
