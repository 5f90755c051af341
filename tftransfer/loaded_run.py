"""A trained run loaded for inference, and evaluating one.

`LoadedRun` restores a run folder's best (or latest) checkpoint into the model
its `params.yaml` describes; `evaluate` scores it on a split or a file; export,
predict, generate and `compare` start from a `LoadedRun`.

Example:

>>> from tftransfer.loaded_run import LoadedRun
>>> run = LoadedRun("tests/fixtures/old_run/run")
>>> run.params.task.type, run.checkpoint_path.endswith("ckpt-1")
('text_classification', True)
"""

import gc
import os

import keras
import tensorflow as tf

from tftransfer import backbones, configs, evaluation, plots, transfer
from tftransfer.data import readers
from tftransfer.run_dir import RunDir
from tftransfer.run_setup import build_task, eval_setup, has_split, read_split, why_not_packed
from tftransfer.training import checkpoints, precision


def checkpoint_path(model_dir, which="best"):
    """The best (else latest) or latest checkpoint of a run; `FileNotFoundError` if none."""
    path = None
    if which == "best":
        path = checkpoints.latest_checkpoint(RunDir(model_dir).best)
    if path is None:
        path = checkpoints.latest_checkpoint(RunDir(model_dir).checkpoints)
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
    status = None
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        # A shape differs (ValueError) or a weight is missing (AssertionError).
        if status is not None:
            status.expect_partial()  # the error below says what did not match
        _drop_failed_restore(e)
        raise checkpoints.CheckpointError(
            f"checkpoint {path} does not fit the model built from "
            f"{model_dir}/params.yaml (was the config edited after training?): "
            f"{str(e).splitlines()[0]}"
        ) from e
    status.expect_partial()
    return path


def _drop_failed_restore(error):
    """Frees a failed restore's objects now, without TF's warning about them.

    TF warns of "unrestored values" when a restore's bookkeeping is deleted;
    after a failure the traceback keeps it until some later garbage
    collection, whose warning then follows this module's one-line error (at
    exit, or in a later call of the same process).
    """
    error.__traceback__ = None  # the frames that hold the restore
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        gc.collect()
    finally:
        logger.setLevel(level)


class LoadedRun:
    """A trained run loaded for inference: config, backbone, task and restored model."""

    def __init__(self, model_dir, checkpoint="best", mixed_precision=""):
        """Restores `checkpoint` of the run in `model_dir`.

        `mixed_precision` (a `runtime.mixed_precision` value, e.g.
        `bfloat16`; `auto` decided on this machine) builds the model to
        compute in that type: variables and outputs stay float32, so any
        precision restores any checkpoint.
        """
        self.model_dir = model_dir
        self.params = configs.from_model_dir(model_dir)
        checkpoint_path(model_dir, checkpoint)  # before minutes of building
        keras.utils.set_random_seed(self.params.trainer.seed)
        # The weights come from the checkpoint.
        backbone_cfg = self.params.backbone.replace(random_init=True)
        policy = precision.policy_name(precision.resolve(mixed_precision)[0])
        with precision.dtype_policy(policy):
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
        return why_not_packed(self.backbone, tf.distribute.get_strategy()) is None

    def serving_functions(self):
        """The task's serving functions on the restored model."""
        return self.task.serving_functions(self.model, self.backbone)


def evaluate(model_dir, split="validation", path="", checkpoint="best"):
    """Evaluates a trained run on a split of its config (or another file).

    Returns:
        The metrics dict; also written to `<model_dir>/eval_<split>.json`
        (`eval_<file name stem>.json` for another file).
    """
    loaded = LoadedRun(model_dir, checkpoint)
    overrides = {"path": path} if path else {}
    if not path and not has_split(loaded.params, split):
        raise readers.DataError(f"the config has no `data.{split}.path`; pass --input")
    examples = read_split(loaded.params, split, **overrides)
    loaded.task.validate_examples(examples)
    name = os.path.splitext(os.path.basename(path))[0] if path else split
    batch_size = loaded.params.trainer.eval_batch_size
    data_config, forward = eval_setup(
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
