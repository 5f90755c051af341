"""One run end to end: config -> data, backbone, task -> train.

`build` makes a run (data read, task prepared, model and optimizer made
under the strategy) without training it; `train` builds and then runs it
(`fit`). Tools and tests that need the same setup call `build`. Each step is
one call into the module that owns it (readers, backbones, tasks, pipeline,
trainer, plots); `loaded_run` restores a trained run and evaluates it.

Example:

>>> import contextlib, io, tempfile
>>> from tftransfer import configs, experiment, loaded_run
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"max_examples": 32}},
...      "task": {"text_classification": {"max_seq_length": 16}},
...      "backbone": {"keep_layers": 1},  # MiniLM's first block of 6: a quick run
...      "trainer": {"epochs": 1, "batch_size": 16}},
... )
>>> run_dir = tempfile.mkdtemp()
>>> with contextlib.redirect_stdout(io.StringIO()):  # the progress bar
...     metrics = experiment.train(params, run_dir)
>>> metrics["examples"], loaded_run.evaluate(run_dir)["examples"]
(32, 32)
"""

import contextlib

import keras
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from tftransfer import (
    backbones,
    configs,
    distillation,
    evaluation,
    fileio,
    loaded_run,
    plots,
    run_setup,
    run_summary,
    tasks,
    transfer,
)
from tftransfer.data import pipeline
from tftransfer.run_dir import RunDir
from tftransfer.training import (
    checkpoints,
    distribute,
    history,
    optimization,
    peak_memory,
    precision,
    resume_check,
    run_lock,
)
from tftransfer.training import trainer as trainer_lib
from tftransfer.transfer import feature_cache


def _read_data(params, train_examples):
    if train_examples is None:
        train_examples = run_setup.read_split(params, "train")
    validation = (
        run_setup.read_split(params, "validation")
        if run_setup.has_split(params, "validation")
        else None
    )
    logging.info(
        f"Read {len(train_examples)} training examples"
        + (f" and {len(validation)} validation examples." if validation else ".")
    )
    return train_examples, validation


def _encode_training_data(task, examples, params):
    """The encoded training rows and how many there are."""
    encoded = pipeline.encoded_dataset(task, examples, params.data)
    count = 0
    # Iterating once fills the in-memory cache that training reads from.
    # An iterator, not the Dataset: see `evaluation.predict_outputs`.
    for _ in tqdm(iter(encoded), desc="tokenize", unit=" rows", leave=False, disable=None):
        count += 1
    if count != len(examples):
        logging.info(f"{len(examples)} training examples make {count} rows.")
    return encoded, count


def prepare_task(params, train_examples, validation=None):
    """Loads the backbone and makes the task, prepared on the training examples.

    Evaluation data is checked against the task before anything is built
    from it, so that a bad label fails now, not after hours of training.

    Returns:
        `(backbone, task)`: a `backbones.Backbone` and the prepared task.
    """
    backbone_cfg = params.backbone
    method = transfer.get(params.transfer)
    if method.random_init:
        backbone_cfg = backbone_cfg.replace(random_init=True)
    if method.backbone_dropout is not None:
        backbone_cfg = backbone_cfg.replace(dropout=method.backbone_dropout)
    backbone, tokenizer = backbones.from_config(backbone_cfg)
    _check_positions(params, backbone)
    task = run_setup.build_task(params, tokenizer)
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
        logging.warning(
            f"{key} is {length}, but the backbone {params.backbone.spec} has "
            f"{limit} positions: using {limit}."
        )
        task_config.max_seq_length = limit
        task_config.check(f"task.{params.task.type}")


def build(params, train_examples=None, total_steps=None, model_dir=None):
    """Builds a run: reads the data, prepares the task, makes model and optimizer.

    Args:
        params: an `ExperimentConfig`.
        train_examples: use these instead of reading `data.train`.
        total_steps: the schedule's length instead of the config's.
        model_dir: the run folder, where a distillation teacher's outputs
            are stored (None: computed, not stored).
    """
    cfg = params.trainer
    strategy = distribute.get_strategy(params.runtime)
    distribute.per_replica_batch_size(cfg.batch_size, strategy)
    train_examples, validation = _read_data(params, train_examples)
    method = transfer.get(params.transfer)
    # Before the teacher's minutes of work: a bad $TFTRANSFER_AUTO_PRECISION fails here.
    choice, precision_note = precision.resolve(params.runtime.mixed_precision, strategy)
    # The teacher runs before anything of the student is built (outside the
    # strategy's scope: its weights need no mirroring). Only the chief stores
    # its outputs; the other workers of a multi-worker run read them.
    taught = None
    if method.uses_teacher:
        write = distribute.is_chief(strategy)
        taught = distillation.prepare(params, train_examples, model_dir, write=write)
    logging.info(f"runtime.mixed_precision: {precision_note}.")
    policy = precision.policy_name(choice)
    with strategy.scope(), precision.dtype_policy(policy):
        backbone, task = prepare_task(params, train_examples, validation)
        train_task, train_rows = task, train_examples
        if taught is not None:
            train_task, train_rows = distillation.training_task(
                taught, task, train_examples, params.transfer
            )
        encoded, num_rows = _encode_training_data(train_task, train_rows, params)
        steps_per_epoch = max(1, num_rows // cfg.batch_size)
        total_steps = total_steps or cfg.train_steps or cfg.epochs * steps_per_epoch
        model = task.build_model(backbone)
        method.prepare(model, backbone)
        packed, packing = run_setup.packed_model(params, task, model, backbone, strategy)
        train_model = packed or task.build_train_model(model, backbone, strategy)
        optimizer = optimization.create_optimizer(
            cfg, total_steps, model, method.learning_rate_multipliers(model, backbone)
        )
        trained_variables = method.trained_variables(model, backbone, steps_per_epoch)
        loss_scale = precision.DynamicLossScale() if policy == "mixed_float16" else None
        features = _cached_features(method, task, model, encoded, cfg, params.data)
        if features is not None:
            train_model = features.head
    return run_setup.Run(
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
        train_task=train_task,
        feature_cache=features,
        compute_dtype=precision.compute_dtype(choice),
        precision_note=precision_note,
    )


def _cached_features(method, task, model, encoded, trainer_config, data_config):
    """The frozen backbone's outputs on the training rows (`feature_cache`), or None."""
    if not method.caches_features():
        return None
    split = task.feature_model(model)
    if split is None:
        logging.info(
            f"transfer.cache_features: the {task.name} task's head reads per-token outputs "
            "(or windows): the frozen backbone runs at every step."
        )
        return None
    widths = pipeline.boundaries(data_config, task.config.max_seq_length)
    cache = feature_cache.compute(*split, encoded, trainer_config.eval_batch_size, widths)
    logging.info(
        f"Frozen features of {len(cache.features)} rows computed in {cache.seconds:.1f} s "
        f"({cache.megabytes:.0f} MB); the head trains on them."
    )
    return cache


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
    run = None if tf.io.gfile.exists(model_dir) else build(params, train_examples, None, model_dir)
    with run_lock.run_lock(model_dir) if chief else contextlib.nullcontext():
        if run is None:
            run = build(params, train_examples, None, model_dir)
        # After build: the labels a task discovers are part of what must match.
        has_checkpoint = bool(checkpoints.latest_checkpoint(RunDir(model_dir).checkpoints))
        for line in resume_check.check(model_dir, run.params, has_checkpoint):
            logging.warning(f"Resuming with a changed setting: {line}")
        if chief:
            run_summary.save_params(run, model_dir)
        return fit(run, model_dir)


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


def _validation_scorer(run):
    """`evaluate(predictions_path=None) -> metrics` on the run's validation data, or None.

    Built once, so `data.cache` keeps its tokenization across evaluations and
    the forward function its traces.
    """
    if run.validation is None:
        return None
    task, batch_size = run.task, run.params.trainer.eval_batch_size
    data_config, forward = run_setup.eval_setup(
        run.params, task, run.model, run.backbone, run.packing
    )
    data = task.eval_dataset(run.validation, batch_size, data_config)

    def evaluate(predictions_path=None):
        return evaluation.evaluate_dataset(
            task, run.model, data, run.validation, batch_size, predictions_path, forward
        )

    return evaluate


def _trainer(run, model_dir):
    cfg = run.params.trainer
    trainer = trainer_lib.Trainer(
        run.model,
        run.train_task.loss,
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
    logging.info(
        f"Training {run.total_steps} steps ({run.steps_per_epoch} per epoch) on "
        f"{run.strategy.num_replicas_in_sync} replica(s): global batch {cfg.batch_size}, "
        f"{distribute.per_replica_batch_size(cfg.batch_size, run.strategy)} per replica."
    )
    return trainer


def fit(run, model_dir):
    """Trains a built run into `model_dir`, then scores its best checkpoint."""
    evaluate = _validation_scorer(run)
    trainer = _trainer(run, model_dir)
    best = trainer.train(
        run.train_dataset,
        run.total_steps,
        run.steps_per_epoch,
        evaluate=evaluate,
        primary_metric=run.task.primary_metric,
    )
    if not distribute.is_chief(run.strategy):
        # The chief scores the best checkpoint and writes the reports; this
        # worker's copies of the checkpoints and history are dropped.
        distribute.remove_write_dir(model_dir, run.strategy)
        return best or {}
    folder = RunDir(model_dir)
    plots.plot_history(
        history.read(model_dir), folder.training_curves, run.task.primary_metric.name
    )
    metrics = {}
    if evaluate is not None:
        if best is not None:
            loaded_run.restore(run.model, model_dir, "best")
        metrics = evaluate(folder.predictions("validation"))
        if run.task.calibrate(metrics):
            run_summary.save_params(run, model_dir)
        metrics["checkpoint_step"] = best["step"] if best else trainer.step
        plots.write_metrics(metrics, folder.eval_json("validation"))
    run_summary.write(run, model_dir, trainer, metrics)
    _save_backbone(run, model_dir)
    return metrics


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
    logging.info(f"Backbone preset written to {path} (use it as backbone.spec).")
