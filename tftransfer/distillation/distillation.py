"""Sets up a distillation run: the teacher, the texts it labels, and the student's targets.

Example:

>>> import contextlib, io, tempfile
>>> from tftransfer import configs, experiment
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 32}, "validation": {"path": ""}},
...      "task": {"text_classification": {"max_seq_length": 16, "labels": []}},
...      "backbone": {"keep_layers": 1},
...      "transfer": {"strategy": "distill", "teacher": "tests/fixtures/old_run/run"},
...      "trainer": {"train_steps": 1, "batch_size": 16}},
... )
>>> with contextlib.redirect_stderr(io.StringIO()):  # the teacher's progress bar
...     run = experiment.build(params)
>>> run.task.labels  # the teacher's
['negative', 'positive']
>>> sorted(next(iter(run.train_dataset()))[1])
['gold', 'has_gold', 'teacher']
"""

import dataclasses
from typing import Any, Dict

import numpy as np
from absl import logging

from tftransfer import run_setup, tasks
from tftransfer.config_checks import ConfigError
from tftransfer.data.raw_examples import Examples
from tftransfer.data.readers import DataError
from tftransfer.distillation import teacher_outputs
from tftransfer.distillation.distilled_task import DistilledTask
from tftransfer.distillation.teacher import Teacher
from tftransfer.run_dir import RunDir


@dataclasses.dataclass
class Distillation:
    """What the teacher gave a run.

    Attributes:
        teacher: the teacher's description (`Teacher.description`).
        examples: the student's training texts: the labelled ones first,
            then those of `data.unlabeled`.
        labelled: how many of `examples` have gold labels.
        outputs: the teacher's outputs on `examples`, in order.
    """

    teacher: Dict[str, Any]
    examples: Examples
    labelled: int
    outputs: Dict[str, np.ndarray]


def _take_teacher_labels(params, teacher):
    """Gives the student the teacher's label (or target) names where its config has none."""
    task_config = params.task.get()
    for key in ("labels", "targets"):
        if hasattr(task_config, key) and not getattr(task_config, key) and teacher.description[key]:
            setattr(task_config, key, list(teacher.description[key]))


def _combined(train, unlabeled):
    """The training examples, then the unlabeled texts that are not among them.

    A text that also has a gold label (e.g. `data.unlabeled` is the whole
    training file and `data.train` its first part) trains once, with it.
    """
    if unlabeled is None:
        return train
    if (train.text_pairs is None) != (unlabeled.text_pairs is None):
        raise DataError(
            "data.unlabeled: the training data "
            + ("has" if train.text_pairs is not None else "has no")
            + " `text_pair_column` and the unlabeled texts must match it"
        )
    labelled = {teacher_outputs.record_key(r) for r in _records(train)}
    keep = [
        i
        for i, r in enumerate(_records(unlabeled))
        if teacher_outputs.record_key(r) not in labelled
    ]
    if len(keep) < len(unlabeled):
        logging.info(
            f"{len(unlabeled) - len(keep)} unlabeled texts are training examples too: "
            "they train once, with their gold labels."
        )
    texts = train.texts + [unlabeled.texts[i] for i in keep]
    pairs = None
    if train.text_pairs is not None:
        pairs = train.text_pairs + [unlabeled.text_pairs[i] for i in keep]
    return Examples(texts, pairs, None, train.sources + [unlabeled.sources[i] for i in keep])


def _records(examples):
    if examples.text_pairs is None:
        return [{"text": t} for t in examples.texts]
    return [{"text": t, "text_pair": p} for t, p in zip(examples.texts, examples.text_pairs)]


def prepare(params, train_examples, model_dir=None, write=True):
    """Loads the teacher and gets its outputs on every training text.

    Args:
        params: the student's `ExperimentConfig` (`transfer.teacher` set);
            its label names are taken from the teacher where empty.
        train_examples: the labelled training examples.
        model_dir: the run folder; the outputs are stored in
            `transfer.teacher_cache`, else `<model_dir>/teacher_outputs`
            (None: not stored).
        write: store the outputs computed here (False on the workers of a
            multi-worker run other than the chief, which read only).

    Returns:
        A `Distillation`.
    """
    cfg = params.transfer
    if not tasks.get(params.task.type).learns_from_teacher:
        learners = sorted(n for n, c in tasks.registered().items() if c.learns_from_teacher)
        raise ConfigError(
            f"transfer.strategy=distill: the {params.task.type} task cannot learn from a "
            f"teacher ({', '.join(learners)} can)"
        )
    teacher = Teacher(cfg.teacher)
    _take_teacher_labels(params, teacher)
    unlabeled = None
    if run_setup.has_split(params, "unlabeled"):
        unlabeled = run_setup.read_split(params, "unlabeled", need_labels=False)
        logging.info(f"Read {len(unlabeled)} unlabeled texts for the teacher to label.")
    examples = _combined(train_examples, unlabeled)
    folder = cfg.teacher_cache or (RunDir(model_dir).teacher_outputs if model_dir else None)
    outputs = teacher_outputs.compute(
        teacher,
        _records(examples),
        folder,
        batch_size=params.trainer.eval_batch_size,
        write=write,
    )
    return Distillation(teacher.description, examples, len(train_examples), outputs)


def training_task(distillation, task, train_examples, transfer_config):
    """`(DistilledTask, examples)`: what the student trains on."""
    teacher = task.teacher_targets(distillation.outputs, distillation.teacher)
    gold = task.encode_labels(train_examples)
    extra = len(distillation.examples) - distillation.labelled
    gold = np.concatenate([gold, np.zeros((extra,) + gold.shape[1:], gold.dtype)])
    has_gold = np.arange(len(gold)) < distillation.labelled
    student = DistilledTask(task, transfer_config, teacher, gold, has_gold.astype(np.float32))
    return student, distillation.examples
