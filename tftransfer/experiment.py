"""One run end to end: config -> data, backbone, task -> train / evaluate.

`build` makes a run (data read, task prepared, model and optimizer made
under the strategy) without training it; `train` builds and then runs it.
Tools and tests that need the same setup call `build`. Each step is one call
into the module that owns it (readers, backbones, tasks, pipeline, trainer,
report).

Example:

>>> import tempfile
>>> from tftransfer import configs, experiment
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"max_examples": 32}},
...      "task": {"text_classification": {"max_seq_length": 16}},
...      "backbone": {"keep_layers": 1},  # MiniLM's first block of 6: a quick run
...      "trainer": {"epochs": 1, "batch_size": 16}},
... )
>>> run_dir = tempfile.mkdtemp()
>>> metrics = experiment.train(params, run_dir)  # doctest: +ELLIPSIS
Read 64 training examples and 32 validation examples.
...
>>> metrics["examples"], experiment.evaluate(run_dir)["examples"]
(32, 32)
"""

import contextlib
import dataclasses
import os
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tftransfer import backbones, configs, evaluation, fileio, plots, run_dir, tasks, transfer
from tftransfer.data import pipeline, readers
from tftransfer.run_dir import RunDir
from tftransfer.training import (
    distribute,
    history,
    optimization,
    overwrite,
    peak_memory,
    precision,
    resume_check,
    run_lock,
)
from tftransfer.training import trainer as trainer_lib


def has_split(params, split):
    return bool(getattr(params.data, split).path)


def read_split(params, split, need_labels=True, **overrides):
    """Reads one split named in the config."""
    spec = getattr(params.data, split)
    if overrides:
        spec = spec.replace(**overrides)
    if not spec.path:
        raise readers.DataError(f"data.{split}.path is empty: give the file to read")
    if not spec.path.startswith("tfds:") and spec.format != "tfds":
        try:
            readers.expand_paths(spec.path)
        except readers.DataError as e:
            key = "--input" if "path" in overrides else f"data.{split}.path"
            raise readers.DataError(f"{key}: {e}") from None
    return tasks.get(params.task.type).read(spec, need_labels=need_labels)


def build_task(params, tokenizer):
    """Instantiates the configured task around a tokenizer."""
    return tasks.get(params.task.type)(params.task.get(), tokenizer)


@dataclasses.dataclass
class Run:
    """A run built from its config, ready to train.

    Attributes:
        params: the config (the task block updated by `task.prepare`).
        strategy: the `tf.distribute.Strategy` everything was built under.
        backbone: a `backbones.Backbone`.
        task: the prepared task (its tokenizer is the backbone's).
        model: the task's model; `train_model` is what the training step
            calls (the same weights, maybe another view: packed rows).
        optimizer: AdamW with its schedule over `total_steps`.
        train_examples, validation: the data read (validation may be None).
        encoded: the encoded, cached training rows; `num_rows` of them.
        steps_per_epoch, total_steps: the schedule.
        trained_variables: `step -> variables` when the transfer strategy
            changes what trains during training, else None.
        packing: whether training batches are packed (`data.packing`
            resolved); `packing_note` says why, for the run's records.
    """

    params: Any
    strategy: Any
    backbone: Any
    task: Any
    model: Any
    train_model: Any
    optimizer: Any
    train_examples: Any
    validation: Optional[Any]
    encoded: Any
    num_rows: int
    steps_per_epoch: int
    total_steps: int
    trained_variables: Optional[Any] = None
    loss_scale: Optional[Any] = None
    packing: bool = False
    packing_note: str = ""

    def train_dataset(self, skip_steps=0):
        """The endless training stream, from step `skip_steps` on."""
        return pipeline.train_dataset(
            self.task,
            self.train_examples,
            self.params.trainer.batch_size,
            self.params.data.replace(packing=self.packing),
            self.params.trainer.seed,
            skip_steps,
            self.encoded,
            static_shapes=trainer_lib.use_xla(self.params.trainer, self.strategy),
            fixed_shapes=distribute.needs_fixed_shapes(self.strategy),
        )


def _read_data(params, train_examples):
    if train_examples is None:
        train_examples = read_split(params, "train")
    validation = read_split(params, "validation") if has_split(params, "validation") else None
    print(
        f"Read {len(train_examples)} training examples"
        + (f" and {len(validation)} validation examples." if validation else "."),
        flush=True,
    )
    return train_examples, validation


def _encode_training_data(task, examples, params):
    """The encoded training rows and how many there are."""
    encoded = pipeline.encoded_dataset(task, examples, params.data)
    count = 0
    # Iterating once fills the in-memory cache that training reads from.
    for _ in tqdm(encoded, desc="tokenize", unit=" rows", leave=False, disable=None):
        count += 1
    if count != len(examples):
        print(f"{len(examples)} training examples make {count} rows.", flush=True)
    return encoded, count


def _packed_model(params, task, model, backbone, strategy):
    """`(model that trains on packed rows or None, why)`; resolves `data.packing`.

    Unset (`None`, the default) packs wherever packing can run, because it
    trained SST-2 to the same accuracy as length buckets over 3 seeds with
    18% shorter steps (BENCHMARKS.md, "Length buckets against packing"). `true` makes a
    setting that cannot pack an error. The config keeps what the user set
    (so that the same config packs on one device and falls back on two);
    the choice goes to the run, `params.yaml`'s header and `run_summary.json`.
    """
    wanted = params.data.packing
    if wanted is False:
        return None, "off (data.packing: false)"
    reason = _why_not_packed(backbone, strategy)
    packed = None
    if reason is None:
        packed = task.build_packed_model(model, backbone)
        if packed is None:
            reason = f"the {task.name} task cannot train on packed rows"
    if wanted and reason:
        raise configs.ConfigError(f"data.packing: {reason} (set data.packing=false)")
    if packed is None:
        return None, f"off: {reason}"
    return packed, "on" if wanted else "on (data.packing unset: packed where it can run)"


def _eval_setup(params, task, model, backbone, packing):
    """`(data config, forward or None)` for evaluation: packed in runs that pack."""
    forward = evaluation.packed_forward(task, model, backbone) if packing else None
    return params.data.replace(packing=forward is not None), forward


def _why_not_packed(backbone, strategy):
    """Why training cannot pack here, or None (before building anything)."""
    backbone = backbones.Backbone.wrap(backbone)
    if not backbone.supports_packing:
        return f"packing needs a BERT-style backbone; got {type(backbone.model).__name__}"
    if strategy.num_replicas_in_sync > 1:
        # experimental_distribute_dataset would split a packed batch's rows
        # and its examples independently; packing per replica is not built.
        return f"packing runs on one replica; got {strategy.num_replicas_in_sync}"
    if distribute.needs_fixed_shapes(strategy):
        return "packed batches vary in rows; TPUs need one fixed shape"
    return None


def prepare_task(params, train_examples, validation=None):
    """Loads the backbone and makes the task, prepared on the training examples.

    Evaluation data is checked against the task before anything is built
    from it, so that a bad label fails now, not after hours of training.

    Returns:
        `(backbone, task)`: a `backbones.Backbone` and the prepared task.
    """
    backbone_cfg = params.backbone
    if transfer.get(params.transfer).random_init:
        backbone_cfg = backbone_cfg.replace(random_init=True)
    backbone, tokenizer = backbones.from_config(backbone_cfg)
    _check_positions(params, backbone)
    task = build_task(params, tokenizer)
    task.prepare(train_examples)
    if validation is not None:
        task.validate_examples(validation)
    return backbone, task


def _check_positions(params, backbone):
    """Clamps `max_seq_length` to the backbone's position table, saying so.

    A longer length would fail on the first long batch (or at export); the
    task's other lengths are checked again against the clamped one.
    """
    limit = getattr(backbones.Backbone.wrap(backbone).model, "max_sequence_length", None)
    task_config = params.task.get()
    length = getattr(task_config, "max_seq_length", None)
    if limit and length and length > limit:
        key = f"task.{params.task.type}.max_seq_length"
        print(
            f"Warning: {key} is {length}, but the backbone {params.backbone.spec} has "
            f"{limit} positions: using {limit}.",
            flush=True,
        )
        task_config.max_seq_length = limit
        task_config.check(f"task.{params.task.type}")


def build(params, train_examples=None, total_steps=None):
    """Builds a run: reads the data, prepares the task, makes model and optimizer.

    Args:
        params: an `ExperimentConfig`.
        train_examples: use these instead of reading `data.train`.
        total_steps: the schedule's length instead of the config's.
    """
    cfg = params.trainer
    strategy = distribute.get_strategy(params.runtime)
    distribute.per_replica_batch_size(cfg.batch_size, strategy)
    train_examples, validation = _read_data(params, train_examples)
    policy = precision.policy_name(params.runtime.mixed_precision)
    with strategy.scope(), precision.dtype_policy(policy):
        backbone, task = prepare_task(params, train_examples, validation)
        encoded, num_rows = _encode_training_data(task, train_examples, params)
        steps_per_epoch = max(1, num_rows // cfg.batch_size)
        total_steps = total_steps or cfg.train_steps or cfg.epochs * steps_per_epoch
        model = task.build_model(backbone)
        method = transfer.get(params.transfer)
        method.prepare(model, backbone)
        packed, packing = _packed_model(params, task, model, backbone, strategy)
        train_model = packed or task.build_train_model(model)
        optimizer = optimization.create_optimizer(
            cfg, total_steps, model, method.learning_rate_multipliers(model, backbone)
        )
        trained_variables = method.trained_variables(model, backbone, steps_per_epoch)
        loss_scale = precision.DynamicLossScale() if policy == "mixed_float16" else None
    return Run(
        params,
        strategy,
        backbone,
        task,
        model,
        train_model,
        optimizer,
        train_examples,
        validation,
        encoded,
        num_rows,
        steps_per_epoch,
        total_steps,
        trained_variables,
        loss_scale,
        packed is not None,
        packing,
    )


def train(params, model_dir, train_examples=None):
    """Fine-tunes the configured backbone on the configured task.

    Writes `params.yaml` (the resolved config, with discovered labels),
    checkpoints, TensorBoard summaries, `history.jsonl`, `training_curves.png`
    and, with validation data, `eval_validation.json` and its confusion matrix.

    Args:
        params: an `ExperimentConfig`.
        model_dir: the run folder (resumed if it holds a checkpoint).
        train_examples: train on these instead of reading `data.train`
            (e.g. a subset).

    Returns:
        The validation metrics of the best checkpoint (or {}).
    """
    # First: MultiWorkerMirroredStrategy must exist before TF runs anything.
    strategy = distribute.get_strategy(params.runtime)
    keras.utils.set_random_seed(params.trainer.seed)
    peak_memory.reset()  # the summary's peak is this run's, not an earlier one's in this process
    # The other workers of a multi-worker run share the chief's model_dir.
    chief = distribute.is_chief(strategy)
    # A new run folder is created only once the data and the backbone have
    # loaded (a typo leaves nothing behind); an existing one is locked first,
    # so a second training refuses before it spends the time to build.
    run = None if tf.io.gfile.exists(model_dir) else build(params, train_examples)
    with run_lock.run_lock(model_dir) if chief else contextlib.nullcontext():
        if run is None:
            run = build(params, train_examples)
        # After build: the labels a task discovers are part of what must match.
        checkpoints = RunDir(model_dir).checkpoints
        has_checkpoint = bool(trainer_lib.latest_checkpoint(checkpoints))
        for line in resume_check.check(model_dir, run.params, has_checkpoint):
            print(f"Resuming with a changed setting: {line}", flush=True)
        if chief:
            save_params(run, model_dir)
        return fit(run, model_dir)


def clear_run(model_dir):
    """Empties `model_dir` for a fresh start (`train --overwrite`), unless a live run holds it.

    Raises:
        ConfigError: `model_dir` holds files but no tftransfer run.
    """
    overwrite.check_folder(model_dir)
    with run_lock.run_lock(model_dir):
        for entry in tf.io.gfile.listdir(model_dir):
            entry = entry.rstrip("/")  # gfile marks folders on object stores
            if entry == run_lock.LOCK_NAME:
                continue
            path = os.path.join(model_dir, entry)
            if os.path.islink(path):
                os.remove(path)  # the link, not what it points to
            elif tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)


PRETRAIN = run_dir.PRETRAIN


def pretrain_then(pretrain_params, params, model_dir):
    """Continued pretraining into `<model_dir>/pretrain`; `params` then starts from it.

    Domain-adaptive pretraining chained with fine-tuning: the pretraining
    run (resumed, or skipped when finished) writes its backbone preset, and
    `params.backbone.spec` is pointed at it.

    Returns:
        The backbone preset folder.
    """
    task_class = tasks.get(pretrain_params.task.type)
    if not task_class.saves_backbone_for(pretrain_params.task.get()):
        raise configs.ConfigError(
            f"--pretrain_config_file: task {pretrain_params.task.type} does not save a "
            "backbone; use masked_lm, or causal_lm with task.causal_lm.save_backbone=true"
        )
    folder = RunDir(model_dir).pretrain.path
    preset = RunDir(folder).backbone
    if not tf.io.gfile.exists(preset):
        train(pretrain_params, folder)
    configs.override(params, {"backbone": {"spec": preset}}, "--pretrain_config_file")
    return preset


def parameter_counts(run):
    """`(trained, total)`: weights the strategy trains at some step, and all weights."""
    total = sum(int(np.prod(v.shape)) for v in run.model.weights if v.dtype != "string")
    trained = {id(v): v for v in run.model.trainable_variables}
    return sum(int(np.prod(v.shape)) for v in trained.values()), total


def save_params(run, model_dir):
    """Writes `params.yaml`, headed by the strategy and how much of the model it trains."""
    trained, total = parameter_counts(run)
    configs.save(
        run.params,
        RunDir(model_dir).params,
        [
            f"transfer.strategy {run.params.transfer.strategy}: {trained:,} of {total:,} "
            f"parameters trained ({100.0 * trained / max(total, 1):.2f}%)",
            f"data.packing: {run.packing_note or 'off'}",
        ],
    )


def _write_summary(run, model_dir, trainer, metrics):
    """`run_summary.json`: strategy, trained parameters, step time, peak memory, result."""
    trained, total = parameter_counts(run)
    # The first step of each shape traces the graph; the median skips those.
    times = sorted(trainer.step_seconds)
    summary = {
        "strategy": run.params.transfer.strategy,
        "trained_parameters": trained,
        "total_parameters": total,
        "packed": run.packing,
        "steps_run": len(times),
        "median_step_seconds": times[len(times) // 2] if times else None,
        "peak_rss_mb": peak_memory.current_peak_mb(),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }
    fileio.write_json(summary, RunDir(model_dir).summary)
    print(
        f"{summary['strategy']}: {trained:,} of {total:,} parameters trained; "
        + (f"median step {summary['median_step_seconds']:.3f} s; " if times else "")
        + f"peak memory {summary['peak_rss_mb']:.0f} MB.",
        flush=True,
    )
    return summary


def fit(run, model_dir):
    """Trains a built run into `model_dir`, then scores its best checkpoint."""
    cfg, task = run.params.trainer, run.task
    evaluate = None
    if run.validation is not None:
        # Built once, so `data.cache` keeps its tokenization across evaluations
        # and the forward function its traces.
        data_config, forward = _eval_setup(run.params, task, run.model, run.backbone, run.packing)
        data = task.eval_dataset(run.validation, cfg.eval_batch_size, data_config)

        def evaluate(predictions_path=None):
            return evaluation.evaluate_dataset(
                task,
                run.model,
                data,
                run.validation,
                cfg.eval_batch_size,
                predictions_path,
                forward,
            )

    trainer = trainer_lib.Trainer(
        run.model,
        task.loss,
        run.optimizer,
        run.strategy,
        model_dir,
        cfg,
        cfg.batch_size,
        run.train_model,
        run.trained_variables,
        write_dir=distribute.write_dir(model_dir, run.strategy),
        loss_scale=run.loss_scale,
    )
    replicas = run.strategy.num_replicas_in_sync
    print(
        f"Training {run.total_steps} steps ({run.steps_per_epoch} per epoch) on "
        f"{replicas} replica(s): global batch {cfg.batch_size}, "
        f"{distribute.per_replica_batch_size(cfg.batch_size, run.strategy)} per replica.",
        flush=True,
    )
    best = trainer.train(
        run.train_dataset,
        run.total_steps,
        run.steps_per_epoch,
        evaluate=evaluate,
        primary_metric=task.primary_metric,
    )
    if not distribute.is_chief(run.strategy):
        # The chief scores the best checkpoint and writes the reports; this
        # worker's copies of the checkpoints and history are dropped.
        distribute.remove_write_dir(model_dir, run.strategy)
        return best or {}
    plots.plot_history(
        history.read(model_dir),
        RunDir(model_dir).training_curves,
        task.primary_metric.name,
    )
    if evaluate is None:
        _write_summary(run, model_dir, trainer, {})
        _save_backbone(run, model_dir)
        return {}
    if best is not None:
        restore(run.model, model_dir, "best")
    metrics = evaluate(RunDir(model_dir).predictions("validation"))
    if task.calibrate(metrics):
        save_params(run, model_dir)
    metrics["checkpoint_step"] = best["step"] if best else trainer.step
    plots.write_metrics(metrics, RunDir(model_dir).eval_json("validation"))
    _write_summary(run, model_dir, trainer, metrics)
    _save_backbone(run, model_dir)
    return metrics


BACKBONE = run_dir.BACKBONE


def _save_backbone(run, model_dir):
    """Continued pretraining: the trained backbone as a preset, `<model_dir>/backbone`.

    The weights are the model's as `fit` leaves them (the best checkpoint
    when there was validation data), adapters merged.
    """
    if not run.task.saves_backbone:
        return
    transfer.get(run.params.transfer).finalize(run.model)
    path = RunDir(model_dir).backbone
    fileio.remove_tree(path)
    backbones.save_preset(run.backbone, run.task.tokenizer, path)
    print(f"Backbone preset written to {path} (use it as backbone.spec).", flush=True)


def checkpoint_path(model_dir, which="best"):
    """The best (else latest) or latest checkpoint of a run; `FileNotFoundError` if none."""
    path = None
    if which == "best":
        path = trainer_lib.latest_checkpoint(RunDir(model_dir).best)
    if path is None:
        path = trainer_lib.latest_checkpoint(RunDir(model_dir).checkpoints)
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}: train first")
    return path


def restore(model, model_dir, which="best"):
    """Loads model weights from the best (else latest) checkpoint.

    Returns:
        The checkpoint path used.
    """
    path = checkpoint_path(model_dir, which)
    # Every weight of the model must come from the checkpoint: a model built
    # differently from the one trained (another head, another config) must
    # fail here, not predict with random weights. Optimizer slots in the
    # checkpoint are fine to skip.
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        # A shape differs (ValueError) or a weight is missing (AssertionError).
        raise trainer_lib.CheckpointError(
            f"checkpoint {path} does not fit the model built from "
            f"{model_dir}/params.yaml (was the config edited after training?): "
            f"{str(e).splitlines()[0]}"
        ) from e
    status.expect_partial()
    return path


class Loaded:
    """A trained run loaded for inference: config, backbone, task and restored model."""

    def __init__(self, model_dir, checkpoint="best", mixed_precision=""):
        """Restores `checkpoint` of the run in `model_dir`.

        `mixed_precision` (a `runtime.mixed_precision` value, e.g.
        `bfloat16`) builds the model to compute in that type: variables and
        outputs stay float32, so any precision restores any checkpoint.
        """
        self.model_dir = model_dir
        self.params = configs.from_model_dir(model_dir)
        checkpoint_path(model_dir, checkpoint)  # before minutes of building
        keras.utils.set_random_seed(self.params.trainer.seed)
        # The weights come from the checkpoint.
        backbone_cfg = self.params.backbone.replace(random_init=True)
        with precision.dtype_policy(precision.policy_name(mixed_precision)):
            self.backbone, tokenizer = backbones.from_config(backbone_cfg)
            self.task = build_task(self.params, tokenizer)
            try:
                self.model = self.task.build_model(self.backbone)
            except ValueError as e:
                # Training wrote a params.yaml it could build from (e.g. the
                # labels it found); an edited one may no longer describe a model.
                raise configs.ConfigError(
                    f"{model_dir}/params.yaml does not describe a model (was it edited "
                    f"after training?): {str(e).splitlines()[0]}"
                ) from e
        # The checkpoint holds what the strategy trained (e.g. LoRA adapters);
        # after restoring, the model becomes a plain one (adapters merged).
        method = transfer.get(self.params.transfer)
        method.prepare(self.model, self.backbone)
        self.checkpoint_path = restore(self.model, model_dir, checkpoint)
        method.finalize(self.model)

    def packing(self):
        """Whether evaluation may pack (`data.packing` not false, a backbone that can)."""
        if self.params.data.packing is False:
            return False
        return _why_not_packed(self.backbone, tf.distribute.get_strategy()) is None

    def serving_functions(self):
        """The task's serving functions on the restored model."""
        return self.task.serving_functions(self.model, self.backbone)


def evaluate(model_dir, split="validation", path="", checkpoint="best"):
    """Evaluates a trained run on a split of its config (or another file).

    Returns:
        The metrics dict; also written to `<model_dir>/eval_<split>.json`
        (`eval_<file name stem>.json` for another file).
    """
    loaded = Loaded(model_dir, checkpoint)
    overrides = {"path": path} if path else {}
    if not path and not has_split(loaded.params, split):
        raise readers.DataError(f"the config has no `data.{split}.path`; pass --input")
    examples = read_split(loaded.params, split, **overrides)
    loaded.task.validate_examples(examples)
    name = os.path.splitext(os.path.basename(path))[0] if path else split
    batch_size = loaded.params.trainer.eval_batch_size
    data_config, forward = _eval_setup(
        loaded.params, loaded.task, loaded.model, loaded.backbone, loaded.packing()
    )
    dataset = loaded.task.eval_dataset(examples, batch_size, data_config)
    metrics = evaluation.evaluate_dataset(
        loaded.task,
        loaded.model,
        dataset,
        examples,
        batch_size,
        RunDir(model_dir).predictions(name),
        forward,
    )
    metrics["checkpoint"] = loaded.checkpoint_path
    plots.write_metrics(metrics, RunDir(model_dir).eval_json(name))
    return metrics
