"""The layout of a run folder (`--model_dir`), in one place.

Training, evaluation, export, `compare` and the CLI ask a `RunDir` for a
path instead of joining names, so the layout is written down once:

```
<model_dir>/
  params.yaml            the resolved config (+ a header: strategy, packing)
  train.lock             held while `train` runs (pid, host, start)
  checkpoints/ckpt-N     the latest few (model, optimizer, data position)
  best/ckpt-N, best.json the best on validation and its metrics
  history.jsonl          training loss and evaluations, one record per line
  run_summary.json       strategy, parameters, step time, peak memory, metrics
  eval_<split>.json      evaluations (+ PNG: confusion matrix or per-label F1)
  predictions_<split>*   NER (CoNLL) and QA (SQuAD JSON) predictions
  training_curves.png    loss and the primary metric over steps
  early_stopped.json     when early stopping ended the run
  backbone/              the trained backbone as a keras-hub preset (continued pretraining)
  pretrain/              the continued-pretraining stage (a run folder of its own)
  export/<version>/      SavedModels (the default export folder)
  train/, validation/    TensorBoard summaries
  workertemp_<type>_<i>/ a non-chief worker's writes, removed when it ends
```

Paths may be on any TF filesystem (`gs://`); writes go through `fileio`.

Example:

>>> from tftransfer.run_dir import RunDir
>>> run = RunDir("runs/demo")
>>> run.params, run.eval_json("test")
('runs/demo/params.yaml', 'runs/demo/eval_test.json')
"""

import dataclasses
import os

PARAMS = "params.yaml"
LOCK = "train.lock"
CHECKPOINTS = "checkpoints"
BEST = "best"
HISTORY = "history.jsonl"
SUMMARY = "run_summary.json"
BACKBONE = "backbone"
PRETRAIN = "pretrain"
#: the name of a non-chief worker's temporary folder in a run folder.
WORKER_TEMP_PREFIX = "workertemp_"


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder.

    Attributes:
        path: the run folder (`--model_dir`).
    """

    path: str

    def join(self, *names):
        return os.path.join(self.path, *names)

    @property
    def params(self):
        return self.join(PARAMS)

    @property
    def lock(self):
        return self.join(LOCK)

    @property
    def checkpoints(self):
        return self.join(CHECKPOINTS)

    @property
    def best(self):
        return self.join(BEST)

    @property
    def best_json(self):
        return self.join(BEST, "best.json")

    @property
    def history(self):
        return self.join(HISTORY)

    @property
    def summary(self):
        return self.join(SUMMARY)

    @property
    def early_stopped(self):
        return self.join("early_stopped.json")

    @property
    def training_curves(self):
        return self.join("training_curves.png")

    @property
    def backbone(self):
        return self.join(BACKBONE)

    @property
    def pretrain(self):
        return RunDir(self.join(PRETRAIN))

    @property
    def export(self):
        return self.join("export")

    @property
    def teacher_outputs(self):
        """`teacher_outputs/`: a distillation teacher's outputs on the training texts."""
        return self.join("teacher_outputs")

    @property
    def train_subset(self):
        return self.join("train_subset.json")

    def tensorboard(self, name):
        """`<name>/`: TensorBoard summaries of `train` (loss, learning rate) or `validation`."""
        return self.join(name)

    def eval_json(self, name):
        """`eval_<name>.json`: the metrics of an evaluation on split (or file stem) `name`."""
        return self.join(f"eval_{name}.json")

    def predictions(self, name):
        """`predictions_<name>`: the stem a task adds its predictions file's extension to."""
        return self.join(f"predictions_{name}")

    def worker_temp(self, task_type, task_id):
        """Where a non-chief worker of a multi-worker run writes (removed when it ends)."""
        return RunDir(self.join(f"{WORKER_TEMP_PREFIX}{task_type}_{task_id}"))
