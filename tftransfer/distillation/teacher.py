"""The teacher of `transfer.strategy: distill`: a trained model that reads raw text.

A teacher is a run folder (its best checkpoint, served in-process) or an
exported SavedModel (a version folder, or an export folder: its newest
version). Either way it is called through its `serving_default` signature on
raw strings, so its tokenizer and architecture need not be the student's,
and it packs a batch's texts where its export does.

Example:

>>> teacher = Teacher("tests/fixtures/old_run/run")
>>> teacher.description["task"], teacher.description["labels"]
('text_classification', ['negative', 'positive'])
>>> sorted(teacher.predict([{"text": "so good"}]))
['label_ids', 'labels', 'probabilities']
"""

import hashlib
import os

import numpy as np
import tensorflow as tf

from tftransfer import configs, export, loaded_run, predict
from tftransfer.run_dir import PARAMS

SAVED_MODEL = "saved_model.pb"


def _newest_version(folder):
    """The highest numbered version folder of an export folder, or None."""
    versions = []
    for entry in tf.io.gfile.listdir(folder):
        name = entry.rstrip("/")
        if name.isdigit() and tf.io.gfile.exists(os.path.join(folder, name, SAVED_MODEL)):
            versions.append(int(name))
    return os.path.join(folder, str(max(versions))) if versions else None


def resolve(path):
    """`("run", run folder)` or `("saved_model", version folder)` for `transfer.teacher`."""
    if not tf.io.gfile.isdir(path):
        raise configs.ConfigError(f"transfer.teacher: {path} is not a folder")
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL)):
        return "saved_model", path
    if tf.io.gfile.exists(os.path.join(path, PARAMS)):
        return "run", path
    version = _newest_version(path)
    if version is not None:
        return "saved_model", version
    raise configs.ConfigError(
        f"transfer.teacher: {path} is neither a trained run folder (no {PARAMS}) nor an "
        f"exported SavedModel (no {SAVED_MODEL}, no numbered version folder holding one)"
    )


class Teacher:
    """A trained model's `serving_default` on raw texts, loaded when first called.

    Args:
        path: a run folder, a SavedModel version folder or an export folder.

    Attributes:
        description: `{"task", "labels", "targets"}`: what the teacher predicts.
        fingerprint: names this teacher's weights (the checkpoint, or the
            export version), so outputs stored for one are not taken for another.
    """

    def __init__(self, path):
        self.path = path
        self.kind, self.location = resolve(path)
        if self.kind == "run":
            params = configs.from_model_dir(self.location)
            task_config = params.task.get()
            self.description = {
                "task": params.task.type,
                "labels": list(getattr(task_config, "labels", None) or []),
                "targets": list(getattr(task_config, "targets", None) or []),
            }
            weights = loaded_run.checkpoint_path(self.location)
        else:
            metadata = export.read_metadata(self.location)
            self.description = {
                "task": metadata["task"],
                "labels": list(metadata.get("labels") or []),
                "targets": list(metadata.get("targets") or []),
            }
            weights = self.location
        identity = f"{self.kind}:{os.path.abspath(weights) if '://' not in weights else weights}"
        self.fingerprint = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        self._function = None
        self._specs = None

    def _load(self):
        if self._function is None:
            if self.kind == "run":
                _, functions, specs = predict.checkpoint_functions(self.location)
            else:
                _, functions, specs = predict.saved_model_functions(self.location)
            self._function = functions["serving_default"]
            self._specs = specs["serving_default"]

    def predict(self, records):
        """`{output: [len(records), ...] array}` for a batch of `{"text", "text_pair"}` dicts."""
        self._load()
        outputs = self._function(**predict.request_tensors(records, self._specs))
        return {k: np.asarray(v.numpy()) for k, v in outputs.items()}
