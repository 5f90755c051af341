"""The training loop: a `strategy.run` step inside a `tf.function`.

Keras 3.15 `fit` cannot run under MultiWorkerMirroredStrategy, so the loop is
our own and the same code serves one device, MirroredStrategy, multi-worker
and TPU. It checkpoints every N steps and at the end, resumes from the latest
checkpoint in the model dir (including the position in the data stream),
evaluates every N steps, keeps the best checkpoint, stops early if asked,
and writes TensorBoard summaries. It knows nothing about the task: it gets a
model, a per-example loss function and an evaluation callback.

Example:

>>> import contextlib, io, tempfile
>>> from tftransfer import configs, experiment
>>> from tftransfer.tasks import Metric
>>> from tftransfer.training.trainer import Trainer
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"path": ""}},
...      "task": {"text_classification": {"max_seq_length": 16}},
...      "backbone": {"keep_layers": 1},  # MiniLM's first block of 6: a quick run
...      "trainer": {"batch_size": 16}},
... )
>>> run = experiment.build(params, total_steps=4)
>>> trainer = Trainer(run.model, run.task.loss, run.optimizer, run.strategy,
...                   tempfile.mkdtemp(), params.trainer, global_batch_size=16,
...                   train_model=run.train_model)  # packed rows, by default
>>> with contextlib.redirect_stdout(io.StringIO()):  # the progress bar
...     best = trainer.train(run.train_dataset, total_steps=4, steps_per_epoch=2,
...                          evaluate=lambda: {"accuracy": 0.5},
...                          primary_metric=Metric("accuracy"))
>>> best, trainer.step
({'step': 4, 'accuracy': 0.5}, 4)
"""

import math
import time

import keras
import tensorflow as tf
from absl import logging

from tftransfer import fileio
from tftransfer.run_dir import RunDir
from tftransfer.training import checkpoints, distribute, history
from tftransfer.training.train_step import TrainStep, use_xla


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run went away mid-step."""


# What a collective raises when a peer process dies or stops answering.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
    tf.errors.InternalError,
)


def _shard_by_data(dataset):
    """Sets the DATA auto-shard policy: each worker keeps its slice of every global batch.

    FILE sharding does not apply: examples are read on the host into memory
    and tokenized in tf.data, so the pipeline has no files to split, and a
    worker reading only some files would count other steps per epoch than
    the others (a deadlock at the first all-reduce one of them skips). With
    DATA, each global batch is the one a single process would train on.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class Trainer:
    """Runs the optimisation loop for one model under one strategy.

    Args:
        model: a Keras model built under `strategy.scope()`.
        loss_fn: `(labels, outputs) -> per-example loss [batch]`.
        optimizer: built under `strategy.scope()`; its step counter is the
            global step.
        strategy: a `tf.distribute.Strategy`.
        model_dir: the run folder: checkpoints are resumed, history and the
            best record are read from here.
        config: a `configs.TrainerConfig`.
        global_batch_size: examples per step over all replicas.
        train_model: the model the training step calls, if not `model`: one
            sharing its weights, e.g. a `PackedTextClassifier`.
        trained_variables: `step -> variables` when what trains changes.
        write_dir: where this process writes checkpoints, summaries and
            history; `model_dir` (the default) on the chief, a temporary
            folder on the other workers of a multi-worker run.
        loss_scale: a `precision.DynamicLossScale` (float16), or None.
    """

    def __init__(
        self,
        model,
        loss_fn,
        optimizer,
        strategy,
        model_dir,
        config,
        global_batch_size,
        train_model=None,
        trained_variables=None,
        write_dir=None,
        loss_scale=None,
    ):
        self.model = model
        self.loss_scale = loss_scale
        self.write_dir = write_dir or model_dir
        self.trained_variables = trained_variables
        self.train_model = train_model or model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.strategy = strategy
        self.model_dir = model_dir
        self.config = config
        self.global_batch_size = global_batch_size
        # The loss scale is only in float16 runs' checkpoints.
        scale = {"loss_scale": loss_scale} if loss_scale is not None else {}
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **scale)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            RunDir(self.write_dir).checkpoints,
            max_to_keep=config.keep_checkpoints,
        )
        # Every worker resumes from the chief's checkpoints; creating a
        # manager writes nothing.
        self.resume_manager = tf.train.CheckpointManager(
            self.checkpoint, RunDir(model_dir).checkpoints, max_to_keep=None
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model),
            RunDir(self.write_dir).best,
            max_to_keep=1,
        )
        self.history_path = RunDir(self.write_dir).history
        self.best_path = RunDir(model_dir).best_json
        self.stopped_path = RunDir(model_dir).early_stopped
        self._train_steps = {}  # one step function per set of trained variables
        self.step_seconds = []  # wall time of each step this process ran
        self.epoch_seconds = {}  # epoch (1, 2, ...) -> seconds in its training steps

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def restore(self):
        """Restores the newest intact checkpoint, if any; returns the step reached."""
        checkpoints.restore_newest(self.resume_manager, self.model, self.optimizer, self.loss_scale)
        return self.step

    def _step_functions(self):
        """`(one step, several steps)` on the variables trained at this step."""
        if self.trained_variables is None:
            variables = self.train_model.trainable_variables
        else:
            variables = self.trained_variables(self.step)
        key = tuple(id(v) for v in variables)
        if key not in self._train_steps:
            self._train_steps[key] = self._make_train_step(variables)
        return self._train_steps[key]

    def _train_step(self, features, labels):
        """One optimizer step on the variables trained at this step."""
        return self._step_functions()[0](features, labels)

    def _make_train_step(self, variables):
        # The model trained may be another view of the same weights (packed
        # rows); checkpoints and evaluation use `self.model`.
        step = TrainStep(
            self.train_model,
            self.loss_fn,
            self.optimizer,
            self.strategy,
            variables,
            self.global_batch_size,
            self.config.clipnorm,
            self.loss_scale,
            jit_compile=use_xla(self.config, self.strategy),
        )
        return step.functions()

    def _log(self, record):
        history.append(self.history_path, record)

    def _load_best(self):
        if tf.io.gfile.exists(self.best_path):
            return fileio.read_json(self.best_path)
        return None

    def _stale_evaluations(self, best, step, metric):
        """Evaluations since the best one, up to `step`, from history.jsonl.

        Derived from the history so that early-stopping patience survives a
        resume: evaluations logged after the restored step are done again.
        """
        steps = {
            r["step"]
            for r in history.read(self.model_dir)
            if metric.name in r
            and 0 < r["step"] <= step
            and (best is None or r["step"] > best["step"])
        }
        return len(steps)

    def _check_finished(self, start, total_steps):
        if start >= total_steps:
            logging.info(f"Already trained to step {start} of {total_steps}.")
            return True
        if tf.io.gfile.exists(self.stopped_path):
            logging.info(
                f"Training stopped early at step {start}; delete {self.stopped_path} to train on."
            )
            return True
        return False

    def _step(self, iterator, count=1):
        """`count` optimizer steps; returns their mean loss. Keeps the work on Ctrl-C."""
        try:
            begin = time.perf_counter()
            if count == 1:
                loss = float(self._train_step(*next(iterator)))
            else:
                loss = float(self._step_functions()[1](iterator, tf.constant(count)))
            self.step_seconds.append((time.perf_counter() - begin) / count)
        except _PEER_ERRORS as e:
            if not distribute.is_multi_worker(self.strategy):
                raise
            # Not checkpointed: the step may have run on some workers only.
            # As with Keras' BackupAndRestore, the cluster restarts every
            # worker and all of them resume from the chief's last checkpoint.
            reason = checkpoints.first_line(e)
            latest = checkpoints.latest_checkpoint(RunDir(self.model_dir).checkpoints)
            raise WorkerLostError(
                f"a worker of this run was lost at step {self.step + 1} ({reason}). Restart "
                "every worker with the same command and TF_CONFIG: training resumes from "
                f"{latest or 'the start (no checkpoint yet)'}."
            ) from None
        except KeyboardInterrupt:
            # The step function either ran whole or not at all, so the state
            # is consistent: keep the work done so far.
            path = self.manager.save(checkpoint_number=self.step)
            logging.warning(f"Interrupted; saved {path}. Run again to resume.")
            raise
        if not math.isfinite(loss):
            # Not checkpointed: the weights are poisoned; the last saved
            # checkpoint is the state to go back to.
            raise FloatingPointError(
                f"loss became {loss} at step {self.step}; lower "
                "trainer.learning_rate or check the data (the latest "
                "checkpoint before it is kept)"
            )
        return loss

    def _evaluate(self, evaluate, step, writer):
        """Evaluates, logs the record and returns it."""
        metrics = evaluate()
        record = {
            "step": step,
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        }
        self._log(record)
        with writer.as_default(step=step):
            for key, value in record.items():
                if key != "step":
                    tf.summary.scalar(key, value)
        shown = ", ".join(
            f"{k}={v:.4f}" for k, v in record.items() if k != "step" and isinstance(v, float)
        )
        logging.info(f"step {step}: validation {shown}")
        return record

    def train(self, make_dataset, total_steps, steps_per_epoch, evaluate=None, primary_metric=None):
        """Trains until `total_steps`, resuming if a checkpoint exists.

        Args:
            make_dataset: `skip_steps -> tf.data.Dataset` of global
                `(features, labels)` batches; must be deterministic so that a
                resumed run continues the same stream.
            total_steps: the step to stop at.
            steps_per_epoch: used when `config.eval_every` is 0.
            evaluate: `() -> metrics dict`, or None for no evaluation.
            primary_metric: a `tasks.base.Metric` (name and direction) of
                `evaluate()`'s result that picks the best checkpoint.

        Returns:
            The best evaluation record (or None without evaluation).
        """
        with checkpoints.full_disk_error(self.write_dir, self._checkpoint_bytes):
            return self._train(make_dataset, total_steps, steps_per_epoch, evaluate, primary_metric)

    def _train(self, make_dataset, total_steps, steps_per_epoch, evaluate, primary_metric):
        start = self._start(total_steps)
        best = self._load_best()
        if self._check_finished(start, total_steps):
            return best
        stale = self._stale_evaluations(best, start, primary_metric) if evaluate else 0
        eval_every = self.config.eval_every or steps_per_epoch
        folder = RunDir(self.write_dir)
        log = history.LossLog(
            self.history_path,
            folder.tensorboard("train"),
            self.config.log_every,
            self.global_batch_size,
        )
        eval_writer = tf.summary.create_file_writer(folder.tensorboard("validation"))
        progbar = keras.utils.Progbar(
            total_steps, stateful_metrics=["loss", "lr"], unit_name="step"
        )
        progbar.update(start)
        if evaluate is not None and self.config.eval_on_start and start == 0:
            self._evaluate(evaluate, 0, eval_writer)
        iterator = iter(
            self.strategy.experimental_distribute_dataset(_shard_by_data(make_dataset(start)))
        )
        step = start
        while step < total_steps:
            count = self._steps_to_run(step, total_steps, eval_every if evaluate else 0)
            begin = time.perf_counter()
            loss = self._step(iterator, count)
            epoch = step // steps_per_epoch + 1
            self.epoch_seconds[epoch] = self.epoch_seconds.get(epoch, 0.0) + (
                time.perf_counter() - begin
            )
            if self.step == step:
                continue  # float16 steps skipped for overflow: nothing was applied
            count, step = self.step - step, self.step
            lr = float(self.optimizer.learning_rate)
            progbar.update(step, [("loss", loss), ("lr", lr)])
            log.add(step, loss, lr, last=step == total_steps, steps=count)
            if evaluate is not None and (step % eval_every == 0 or step == total_steps):
                record = self._evaluate(evaluate, step, eval_writer)
                best, stale = self._keep_best(record, best, stale, step, primary_metric)
                if 0 < self.config.early_stopping_patience <= stale:
                    self._stop_early(step, primary_metric, stale)
                    break
            # After the evaluation: a crash during it resumes before it and
            # evaluates again, so no best checkpoint is missed.
            if step % self.config.checkpoint_every == 0 or step == total_steps:
                self.manager.save(checkpoint_number=step)
        log.writer.flush()
        eval_writer.flush()
        return best

    def _checkpoint_bytes(self):
        """About how much one checkpoint takes: the model's and the optimizer's variables."""
        variables = list(self.model.weights) + list(self.optimizer.variables)
        return sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables)

    def _start(self, total_steps):
        """Clears unfinished saves and resumes; returns the step reached."""
        tf.io.gfile.makedirs(self.write_dir)
        checkpoints.remove_unfinished_run_saves(self.write_dir)
        start = self.restore()
        if total_steps == 0 and start == 0 and not self.manager.latest_checkpoint:
            # `trainer.epochs: 0`: the starting weights are the run.
            self.manager.save(checkpoint_number=0)
            logging.info("Nothing to train: the starting weights are saved as checkpoint 0.")
        return start

    def _keep_best(self, record, best, stale, step, metric):
        """Saves `record`'s weights as the best if it improves; returns `(best, stale)`."""
        if not metric.improves(record[metric.name], best and best[metric.name]):
            return best, stale + 1
        self.best_manager.save(checkpoint_number=step)
        fileio.write_json(record, RunDir(self.write_dir).best_json)
        return record, 0

    def _steps_to_run(self, step, total_steps, eval_every):
        """Steps in the next call: up to `steps_per_execution`, never past an evaluation or save."""
        if self.trained_variables is not None:
            return 1  # what trains may change at any step (gradual unfreezing)
        count = min(self.config.steps_per_execution, total_steps - step)
        for every in (eval_every, self.config.checkpoint_every):
            if every:
                count = min(count, every - step % every)
        return max(count, 1)

    def _stop_early(self, step, metric, stale):
        logging.info(
            f"Early stopping at step {step}: {metric.name} has not "
            f"improved for {stale} evaluations."
        )
        self.manager.save(checkpoint_number=step)
        fileio.write_json({"step": step}, RunDir(self.write_dir).early_stopped)
