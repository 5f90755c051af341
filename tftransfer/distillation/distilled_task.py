"""The student's task as training sees it: the teacher's targets beside the gold labels.

`DistilledTask` wraps the student's task for the training data and the loss
only: each encoded row's `labels` become `{"gold", "has_gold", "teacher"}`,
and the per-example loss is

    w * distillation_loss(teacher, student, T) + (1 - w) * task.loss(gold, student)

for examples with a gold label, and the distillation term alone for texts
of `data.unlabeled` (w = `transfer.distill_weight`, T =
`transfer.distill_temperature`). Each task defines its distillation loss
(soft-max KL, per-label sigmoid KL, or its regression loss on the teacher's
scores). Evaluation, export and the saved config use the task itself.

Example:

>>> import numpy as np, tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.text_classification import (
...     TextClassification, TextClassificationConfig)
>>> from tftransfer.transfer import TransferConfig
>>> _, tokenizer = backbones.load("default")
>>> task = TextClassification(TextClassificationConfig(labels=["neg", "pos"]), tokenizer)
>>> student = DistilledTask(task, TransferConfig(strategy="distill", teacher="t"),
...                         teacher=np.log([[0.9, 0.1]]), gold=np.array([0]), has_gold=[1.0])
>>> labels = {"gold": tf.constant([0]), "has_gold": tf.constant([1.0]),
...           "teacher": tf.math.log(tf.constant([[0.9, 0.1]]))}
>>> loss = student.loss(labels, tf.math.log(tf.constant([[0.9, 0.1]])))
>>> round(float(loss[0]), 4)  # no soft-target term: the student agrees with the teacher
0.0527
"""

import numpy as np
import tensorflow as tf

_EXTRAS = ("gold", "has_gold", "teacher")


class DistilledTask:
    """`task` with teacher targets in its training rows and a distillation loss.

    Every attribute but `raw_dataset`, `encode` and `loss` is the task's.

    Args:
        task: the student's prepared task.
        transfer_config: the run's `TransferConfig` (temperature, weight).
        teacher: `[examples, outputs]` targets (`task.teacher_targets`).
        gold: `task.encode_labels` of the labelled examples, first in the
            examples; zeros of the same shape for the rest.
        has_gold: `[examples]` 1.0 where `gold` is a label, 0.0 elsewhere.
    """

    def __init__(self, task, transfer_config, teacher, gold, has_gold):
        self.task = task
        self.temperature = float(transfer_config.distill_temperature)
        self.weight = float(transfer_config.distill_weight)
        self._columns = {
            "gold": np.asarray(gold),
            "has_gold": np.asarray(has_gold, np.float32),
            "teacher": np.asarray(teacher, np.float32),
        }

    def __getattr__(self, name):
        return getattr(self.task, name)

    def raw_dataset(self, examples, with_labels=True):
        del with_labels  # the labels are the columns given to the constructor
        raw = self.task.raw_dataset(examples, with_labels=False)
        extras = tf.data.Dataset.from_tensor_slices(self._columns)
        return tf.data.Dataset.zip(raw, extras).map(lambda r, e: {**r, **e})

    def encode(self, batch):
        rows = dict(self.task.encode({k: v for k, v in batch.items() if k not in _EXTRAS}))
        rows["labels"] = {k: batch[k] for k in _EXTRAS}
        return rows

    def loss(self, labels, outputs):
        soft = self.task.distillation_loss(labels["teacher"], outputs, self.temperature)
        gold = self.task.loss(labels["gold"], outputs)
        mixed = self.weight * soft + (1.0 - self.weight) * gold
        return tf.where(labels["has_gold"] > 0, mixed, soft)
