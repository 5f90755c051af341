"""The pieces of a run that building, training and loading share.

`Run` is what `experiment.build` makes; `read_split` and `build_task` read a
config's data and make its task; `packed_model`, `eval_setup` and
`why_not_packed` resolve `data.packing` for training and evaluation.

Example:

>>> from tftransfer import configs, run_setup
>>> params = configs.load(["configs/demo_goemotions_sentiment.yaml"])
>>> examples = run_setup.read_split(params, "validation")
>>> len(examples), run_setup.has_split(params, "test")
(600, False)
"""

import dataclasses
from typing import Any, Optional

from tftransfer import backbones, configs, evaluation, tasks
from tftransfer.data import pipeline, readers
from tftransfer.training import distribute, train_step
from tftransfer.transfer import feature_cache


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
        feature_cache: `transfer.cache_features`: the frozen backbone's
            outputs on the training rows (`train_model` is then the head),
            or None.
        train_task: what training encodes and takes the loss from: `task`,
            or under distillation a `DistilledTask` around it, whose
            examples (`train_examples` and the unlabeled texts) `encoded` holds.
        compute_dtype: what the layers compute in (`runtime.mixed_precision`
            resolved: `auto` decided); `precision_note` adds why.
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
    train_task: Optional[Any] = None
    feature_cache: Optional[Any] = None
    compute_dtype: str = "float32"
    precision_note: str = "float32 (set)"

    def __post_init__(self):
        if self.train_task is None:
            self.train_task = self.task

    def train_dataset(self, skip_steps=0):
        """The endless training stream, from step `skip_steps` on."""
        if self.feature_cache is not None:
            return feature_cache.train_dataset(
                self.feature_cache,
                self.params.trainer.batch_size,
                self.params.data,
                self.task.config.max_seq_length,
                self.params.trainer.seed,
                skip_steps,
                packing=self.packing,
                fixed_shapes=distribute.needs_fixed_shapes(self.strategy),
            )
        return pipeline.train_dataset(
            self.train_task,
            self.train_examples,
            self.params.trainer.batch_size,
            self.params.data.replace(packing=self.packing),
            self.params.trainer.seed,
            skip_steps,
            self.encoded,
            static_shapes=train_step.use_xla(self.params.trainer, self.strategy),
            fixed_shapes=distribute.needs_fixed_shapes(self.strategy),
        )


def packed_model(params, task, model, backbone, strategy):
    """`(model that trains on packed rows or None, why)`; resolves `data.packing`.

    Unset (`None`, the default) packs wherever packing can run: it trains to
    the same accuracy as length buckets in shorter steps (BENCHMARKS.md,
    "Length buckets against packing"). `true` makes a
    setting that cannot pack an error. The config keeps what the user set
    (so that the same config packs on one device and falls back on two);
    the choice goes to the run, `params.yaml`'s header and `run_summary.json`.
    """
    wanted = params.data.packing
    if wanted is False:
        return None, "off (data.packing: false)"
    reason = why_not_packed(backbone, strategy)
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


def eval_setup(params, task, model, backbone, packing):
    """`(data config, forward or None)` for evaluation: packed in runs that pack."""
    forward = evaluation.packed_forward(task, model, backbone) if packing else None
    return params.data.replace(packing=forward is not None), forward


def why_not_packed(backbone, strategy):
    """Why training cannot pack here, or None (before building anything)."""
    backbone = backbones.Backbone.wrap(backbone)
    if not backbone.supports_packing:
        return f"packing needs a BERT-style backbone; got {type(backbone.model).__name__}"
    reason = distribute.why_not_one_replica_paths(strategy)
    return f"packing {reason}" if reason else None
