"""One run end to end: config -> data, backbone, task -> train / evaluate / predict.

This is the glue the CLI calls; each step is one call into the module that
owns it (readers, backbones, tasks, pipeline, trainer, report).

Example:

```python
from tftransfer import configs, experiment

params = configs.load(["configs/demo_goemotions_sentiment.yaml"])
experiment.train(params, "runs/demo")
print(experiment.evaluate("runs/demo"))
```
"""

import os
import weakref

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tftransfer import backbones, configs, report, tasks
from tftransfer.data import pipeline, readers
from tftransfer.training import distribute, optimization
from tftransfer.training import trainer as trainer_lib


def has_split(params, split):
    return bool(getattr(params.data, split).path)


def read_split(params, split, need_labels=True, **overrides):
    """Reads one split named in the config."""
    spec = getattr(params.data, split)
    if overrides:
        spec = spec.replace(**overrides)
    return tasks.get(params.task.type).read(spec, need_labels=need_labels)


def build_task(params, tokenizer):
    """Instantiates the configured task around a tokenizer."""
    task_cls = tasks.get(params.task.type)
    text_pair = bool(params.data.train.text_pair_column)
    return task_cls(params.task.get(), tokenizer, text_pair=text_pair)


_FORWARD = weakref.WeakKeyDictionary()


def _forward_fn(task, model):
    # One tf.function per model, so repeated evaluations reuse its traces.
    if model not in _FORWARD:
        # No AutoGraph: the task code has no tensor-dependent Python control
        # flow, and twice a long CoNLL run died at its first evaluation with
        # "'dict' object has no attribute 'flat_values'" inside the converted
        # code (never in short runs); plain tracing removes that layer.
        _FORWARD[model] = tf.function(
            lambda features: task.forward(model, features),
            reduce_retracing=True,
            autograph=False,
        )
    return _FORWARD[model]


def _per_example(outputs):
    """Splits a batch of outputs (dense, ragged or a dict) into per-example items."""
    if isinstance(outputs, dict):
        columns = {k: _per_example(v) for k, v in outputs.items()}
        return [dict(zip(columns, row)) for row in zip(*columns.values())]
    if isinstance(outputs, tf.RaggedTensor):
        values = outputs.values.numpy()
        return np.split(values, outputs.row_splits.numpy()[1:-1])
    return list(outputs.numpy())


def predict_outputs(task, model, dataset, num_examples=None, batch_size=None):
    """Runs `task.forward` over an `eval_dataset`; returns one output per example.

    Batches may come in any order (bucketing): each carries the input
    positions of its examples, and outputs are returned in input order.
    """
    forward = _forward_fn(task, model)
    total = -(-num_examples // batch_size) if num_examples and batch_size else None
    outputs, positions = [], []
    for features, index in tqdm(
        dataset, total=total, desc="predict", unit=" batches", leave=False, disable=None
    ):
        outputs.extend(_per_example(forward(features)))
        positions.extend(index.numpy().tolist())
    ordered = [None] * len(outputs)
    for position, output in zip(positions, outputs):
        ordered[position] = output
    if sorted(positions) != list(range(len(outputs))):
        raise ValueError("the evaluation dataset did not give every example exactly once")
    return ordered


def evaluate_dataset(task, model, dataset, examples, batch_size, predictions_path=None):
    """The task's real metrics on a labelled evaluation dataset.

    With `predictions_path` (a path without extension), also writes the
    predictions in the task's file format (e.g. CoNLL `token gold predicted`
    lines for NER), if it has one.
    """
    outputs = predict_outputs(task, model, dataset, len(examples), batch_size)
    metrics = task.evaluate(outputs, examples)
    if predictions_path and hasattr(task, "write_predictions"):
        metrics["predictions_file"] = task.write_predictions(outputs, examples, predictions_path)
    return metrics


def evaluate_examples(task, model, examples, params, predictions_path=None):
    """The task's real metrics on labelled examples."""
    batch_size = params.trainer.eval_batch_size
    dataset = pipeline.eval_dataset(task, examples, batch_size, params.data)
    return evaluate_dataset(task, model, dataset, examples, batch_size, predictions_path)


def _training_data(task, examples, params):
    """The encoded training rows and how many there are."""
    encoded = pipeline.encoded_dataset(task, examples, params.data)
    count = 0
    # Iterating once fills the in-memory cache that training reads from.
    for _ in tqdm(encoded, desc="tokenize", unit=" rows", leave=False, disable=None):
        count += 1
    return encoded, count


def _packed_model(params, task, model, backbone, strategy):
    """The model that trains on packed rows under `data.packing`, else None."""
    if not params.data.packing:
        return None
    packed = task.build_packed_model(model, backbone)
    if packed is None:
        raise ValueError(f"data.packing: the {task.name} task cannot train on packed rows")
    if strategy.num_replicas_in_sync > 1:
        # experimental_distribute_dataset would split a packed batch's rows
        # and its examples independently; packing per replica is not built.
        raise ValueError(
            "data.packing runs on one replica; got "
            f"{strategy.num_replicas_in_sync} (set data.packing=false)"
        )
    return packed


def train(params, model_dir):
    """Fine-tunes the configured backbone on the configured task.

    Writes `params.yaml` (the resolved config, with discovered labels),
    checkpoints, TensorBoard summaries, `history.jsonl`, `training_curves.png`
    and, with validation data, `eval_validation.json` and its confusion matrix.

    Returns:
        The validation metrics of the best checkpoint (or {}).
    """
    cfg = params.trainer
    keras.utils.set_random_seed(cfg.seed)
    os.makedirs(model_dir, exist_ok=True)

    train_examples = read_split(params, "train")
    validation = read_split(params, "validation") if has_split(params, "validation") else None
    print(
        f"Read {len(train_examples)} training examples"
        + (f" and {len(validation)} validation examples." if validation else "."),
        flush=True,
    )

    strategy = distribute.get_strategy(params.runtime)
    global_batch = cfg.batch_size

    with strategy.scope():
        backbone, tokenizer = backbones.from_config(params.backbone)
        task = build_task(params, tokenizer)
        task.prepare(train_examples)
        if validation is not None:
            task.validate_examples(validation)  # fail now, not after hours of training
        encoded, num_train = _training_data(task, train_examples, params)
        if num_train != len(train_examples):
            print(f"{len(train_examples)} training examples make {num_train} rows.", flush=True)
        steps_per_epoch = max(1, num_train // global_batch)
        total_steps = cfg.train_steps or cfg.epochs * steps_per_epoch
        model = task.build_model(backbone)
        train_model = _packed_model(params, task, model, backbone, strategy)
        optimizer = optimization.create_optimizer(cfg, total_steps, model)
    configs.save(params, os.path.join(model_dir, "params.yaml"))

    def make_dataset(skip_steps):
        return pipeline.train_dataset(
            task,
            train_examples,
            global_batch,
            params.data,
            cfg.seed,
            skip_steps,
            encoded,
            static_shapes=trainer_lib.use_xla(cfg, strategy),
        )

    evaluate = None
    if validation is not None:
        # Built once, so `data.cache` keeps its tokenization across evaluations.
        validation_data = pipeline.eval_dataset(task, validation, cfg.eval_batch_size, params.data)

        def evaluate(predictions_path=None):
            return evaluate_dataset(
                task, model, validation_data, validation, cfg.eval_batch_size, predictions_path
            )

    trainer = trainer_lib.Trainer(
        model, task.loss, optimizer, strategy, model_dir, cfg, global_batch, train_model
    )
    print(
        f"Training {total_steps} steps ({steps_per_epoch} per epoch) on "
        f"{strategy.num_replicas_in_sync} replica(s), batch {global_batch}.",
        flush=True,
    )
    best = trainer.train(
        make_dataset,
        total_steps,
        steps_per_epoch,
        evaluate=evaluate,
        primary_metric=task.primary_metric,
    )
    history = trainer_lib.read_history(model_dir)
    report.plot_history(
        history, os.path.join(model_dir, "training_curves.png"), task.primary_metric
    )
    if validation is None:
        return {}
    if best is not None:
        restore(model, model_dir, "best")
    metrics = evaluate(os.path.join(model_dir, "predictions_validation"))
    if task.calibrate(metrics):
        configs.save(params, os.path.join(model_dir, "params.yaml"))
    metrics["checkpoint_step"] = best["step"] if best else trainer.step
    report.write_metrics(metrics, os.path.join(model_dir, "eval_validation.json"))
    return metrics


def restore(model, model_dir, which="best"):
    """Loads model weights from the best (else latest) checkpoint.

    Returns:
        The checkpoint path used.
    """
    path = None
    if which == "best":
        path = tf.train.latest_checkpoint(os.path.join(model_dir, trainer_lib.BEST))
    if path is None:
        path = tf.train.latest_checkpoint(os.path.join(model_dir, trainer_lib.CHECKPOINTS))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}: train first")
    status = tf.train.Checkpoint(model=model).read(path)
    # Every weight of the model must come from the checkpoint: a model built
    # differently from the one trained (another head, another config) must
    # fail here, not predict with random weights. Optimizer slots in the
    # checkpoint are fine to skip.
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(
            f"checkpoint {path} does not hold every weight of the model built from "
            f"{model_dir}/params.yaml (was the config edited after training?): "
            f"{str(e).splitlines()[0]}"
        ) from e
    status.expect_partial()
    return path


class Loaded:
    """A trained run loaded for inference: config, task and restored model."""

    def __init__(self, model_dir, checkpoint="best"):
        self.model_dir = model_dir
        self.params = configs.from_model_dir(model_dir)
        keras.utils.set_random_seed(self.params.trainer.seed)
        backbone_cfg = self.params.backbone.as_dict()
        backbone_cfg["random_init"] = True  # weights come from the checkpoint
        backbone, tokenizer = backbones.from_config(configs.BackboneConfig(**backbone_cfg))
        self.task = build_task(self.params, tokenizer)
        self.model = self.task.build_model(backbone)
        self.checkpoint_path = restore(self.model, model_dir, checkpoint)


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
    metrics = evaluate_examples(
        loaded.task,
        loaded.model,
        examples,
        loaded.params,
        os.path.join(model_dir, f"predictions_{name}"),
    )
    metrics["checkpoint"] = loaded.checkpoint_path
    report.write_metrics(metrics, os.path.join(model_dir, f"eval_{name}.json"))
    return metrics
