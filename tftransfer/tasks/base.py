"""The Task interface and its config base class.

A task owns everything that depends on what is predicted, in three sides:

- data: how raw examples are read, checked (`validate_examples`) and
  encoded into training rows (`encode`), and which evaluation batches its
  `forward` takes (`eval_dataset`);
- model: the head on the backbone (`build_model`), the loss, and the metric
  that picks the best checkpoint (`primary_metric`, with its direction);
- serving: raw inputs in, answers out, in the graph (`serving_functions`),
  reusing the data side's tokenization.

A task is one module: its config class (a `TaskConfig`), its `Task` subclass
and `registry.register(name, config_class)`. The experiment config's `task` one-of is
built from the registry, so a new task needs no edit anywhere else. The
trainer only sees `(features, labels)` batches, a model and a loss.

Example:

>>> from tftransfer import tasks
>>> tasks.get("text_classification").config_class.__name__
'TextClassificationConfig'
>>> tasks.Metric("perplexity", lower_is_better=True).improves(12.0, best=15.0)
True

`tests/test_task_plugin.py` adds a whole task (config, task, registration)
from outside the package.
"""

import abc
import dataclasses

import numpy as np
import tensorflow as tf
from official.modeling.hyperparams import base_config

from tftransfer.config_checks import bounded
from tftransfer.data import pipeline, readers

#: longest `max_seq_length` accepted: beyond any released checkpoint's context.
MAX_SEQ_LENGTH = 1 << 20


@dataclasses.dataclass
class TaskConfig(base_config.Config):
    """Base of every task's config.

    Attributes:
        max_seq_length: tokens per model input row, special tokens included.
    """

    #: fields earlier versions wrote into `params.yaml` and this config no
    #: longer has; a run folder's config is read without them.
    RETIRED_FIELDS = ()

    max_seq_length: int = bounded(128, low=2, high=MAX_SEQ_LENGTH)

    def check(self, key):
        """Raises `config_checks.ConfigError` naming `key.<field>` for values that
        are wrong together; each field's own type and range are declared with
        it (`config_checks.bounded`, `one_of`, `text`) and checked before.

        Args:
            key: where this config sits, e.g. `task.text_classification`.
        """


@dataclasses.dataclass(frozen=True)
class Metric:
    """The metric that picks the best checkpoint, with its direction.

    Attributes:
        name: a key of `Task.evaluate`'s result.
        lower_is_better: True for losses and perplexity.
    """

    name: str
    lower_is_better: bool = False

    def improves(self, value, best):
        """Whether `value` is better than `best` (None: nothing yet)."""
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best


class Task(abc.ABC):
    """What every task provides to the trainer, the evaluator and export.

    Args:
        config: the task's `TaskConfig` (its block of the experiment config).
        tokenizer: the backbone's keras-hub tokenizer.
    """

    name = None
    config_class = None
    #: picks the best checkpoint and drives early stopping.
    primary_metric = Metric("accuracy")
    #: optional hook `training_batch(features, labels) -> (features, labels)`:
    #: per-batch work on training batches that must differ every epoch (the
    #: masked-LM task draws its masks here); None = none.
    training_batch = None
    #: optional hook `pretokenize(raw_batch) -> batch`: evaluation's
    #: tokenization, done once per run and cached with `data.cache` (NER
    #: and QA subword ids); None = `forward` tokenizes.
    pretokenize = None
    #: keys of `evaluate`'s result the CLI's summary line shows, in order
    #: (the primary metric is always shown); empty = every number.
    summary_metrics = ()
    #: text fields of the records `predict` and `generate` read for this task
    #: (its serving inputs that take a string each); an empty one is an error
    #: naming the file and line, as in training data.
    input_text_fields = ("text",)
    #: whether `transfer.strategy: distill` can train this task (it defines
    #: `teacher_targets` and `distillation_loss`).
    learns_from_teacher = False

    @classmethod
    def summary(cls, metrics):
        """`metrics` as the one line the CLI prints after training or evaluation."""
        keys = list(cls.summary_metrics) or [cls.primary_metric.name] + sorted(metrics)
        keys.append(cls.primary_metric.name)
        shown = []
        for key in dict.fromkeys(keys):
            value = metrics.get(key)
            if isinstance(value, float):
                shown.append(f"{key}={value:.4f}")
            elif isinstance(value, int) and not isinstance(value, bool):
                shown.append(f"{key}={value}")
        return "Evaluation: " + ", ".join(shown)

    def __init__(self, config, tokenizer):
        self.config = config
        self.tokenizer = tokenizer

    @property
    def labels(self):
        """Label names in id order (empty for tasks without a label set)."""
        return []

    # -- data ---------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        """Reads one data split (a `configs.InputConfig`) into examples."""
        return readers.read(spec, need_labels=need_labels)

    @abc.abstractmethod
    def prepare(self, train_examples):
        """Learns what the data decides (label vocabulary, class weights).

        Updates `self.config` so that the saved config rebuilds the same task.
        """

    def validate_examples(self, examples):
        """Raises `DataError` (file:line) for examples this task cannot score.

        Called on evaluation data before training starts.
        """

    @abc.abstractmethod
    def raw_dataset(self, examples, with_labels=True):
        """Returns a `tf.data.Dataset` of raw (untokenized) example dicts."""

    @abc.abstractmethod
    def encode(self, batch):
        """Maps a batch of raw labelled examples to training rows, in-graph.

        Returns:
            A dict of `[rows, max_seq_length]` model features with a
            `padding_mask`, plus `labels`; there may be more rows than
            examples (e.g. windows of long texts).
        """

    # A task may define `training_batch(features, labels) -> (features,
    # labels)`: applied to every training batch after batching (masked-LM
    # masks drawn anew each epoch). A task with `saves_backbone = True` has
    # its trained backbone written as a preset (`<model_dir>/backbone`).
    saves_backbone = False

    @classmethod
    def saves_backbone_for(cls, config):
        """Whether a run with this task config writes its backbone as a preset."""
        del config
        return bool(cls.saves_backbone)

    def position_keys(self, row_keys):
        """Keys of an encoded row with one value per sequence position.

        Length bucketing cuts these to the bucket's length. By default every
        feature; tasks whose labels are per position add `labels`.
        """
        return [k for k in row_keys if k != "labels"]

    def eval_dataset(self, examples, batch_size, data_config):
        """`(features, index)` batches for `forward`: every example once.

        `index` is each example's input position; batches may come in any
        order. By default raw examples in input order (`forward` encodes
        them itself, e.g. into windows).
        """
        return pipeline.raw_eval_dataset(self, examples, batch_size, data_config)

    # -- model --------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, backbone):
        """Returns a Keras functional model on a `backbones.Backbone`."""

    def build_packed_model(self, model, backbone):
        """A model sharing `model`'s weights that trains on packed rows.

        For `data.packing` (see `data/packing.py`); None when the task
        cannot train on packed rows.
        """
        del model, backbone
        return None

    def build_train_model(self, model, backbone, strategy):
        """A faster model on `model`'s weights for the training step, or None.

        It must compute what `model` computes in training (the trainer
        checkpoints and evaluates `model` itself). `backbone` is the one
        `model` was built on, `strategy` the run's `tf.distribute` strategy.
        """
        del model, backbone, strategy
        return None

    @abc.abstractmethod
    def loss(self, labels, outputs):
        """Returns the per-example loss (shape [batch])."""

    def forward(self, model, features):
        """Evaluation/prediction outputs for one `eval_dataset` batch."""
        return model(features, training=False)

    def packed_forward(self, model, backbone):
        """`features -> forward outputs` that packs a batch's rows, or None.

        Evaluation uses it in runs that pack (`data.packing`): the same
        outputs as `forward`, computed on rows that several examples share.
        None (the default) where the task cannot evaluate packed.
        """
        del model, backbone
        return None

    def feature_model(self, model):
        """`(feature model, head)` for frozen-feature caching, or None.

        The feature model maps the model's inputs to what the trained head
        reads (e.g. the pooled vector); the head maps that to the model's
        outputs with the model's own head layers. None (the default): the
        task's head reads per-token outputs, which are not cached.
        """
        del model
        return None

    # -- distillation -------------------------------------------------------
    def teacher_targets(self, teacher_outputs, teacher):
        """The targets `transfer.strategy: distill` trains this task's model toward.

        Args:
            teacher_outputs: `{serving output: [examples, ...] array}` of the
                teacher's `serving_default` on the training texts.
            teacher: `{"task": ..., "labels": [...], "targets": [...]}`, what
                the teacher predicts.

        Returns:
            `[examples, outputs]` float32, in the space of this model's
            outputs (logits, normalised scores).
        """
        raise NotImplementedError(f"{self.name} cannot learn from a teacher")

    def distillation_loss(self, targets, outputs, temperature):
        """Per-example loss `[batch]` between the model's outputs and `teacher_targets`."""
        raise NotImplementedError

    # -- evaluation ---------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, outputs, examples):
        """Computes the task's real metrics.

        Args:
            outputs: one `forward` output per example, in example order
                (NumPy arrays).
            examples: the labelled examples they were computed for.
        """

    def write_predictions(self, outputs, examples, path):
        """Writes predictions in the task's file format to `path` + extension.

        Returns:
            The file written, or None for tasks without such a format.
        """
        del outputs, examples, path
        return None

    def calibrate(self, validation_metrics):
        """Sets values chosen on validation data (e.g. a threshold).

        Returns:
            Whether `self.config` changed (the caller saves it).
        """
        del validation_metrics
        return False

    # -- serving ------------------------------------------------------------
    @abc.abstractmethod
    def serving_inputs(self):
        """Returns `{name: tf.TensorSpec}` of the raw serving inputs."""

    def tokenize(self, inputs):
        """Raw serving inputs -> model features, in-graph.

        Used by the default `serving_functions`; tasks that override those
        (one request -> several model calls, e.g. windows) need not have it.
        """
        raise NotImplementedError(f"{type(self).__name__} defines its own serving_functions")

    @abc.abstractmethod
    def postprocess(self, outputs):
        """Maps `forward` outputs to answers (graph ops, used by export too)."""

    def serving_functions(self, model, backbone):
        """Returns `{signature name: (function, input specs)}` for export.

        The default signature is `tokenize` -> `serving_call` -> `postprocess`.
        """
        specs = self.serving_inputs()
        names = list(specs)
        call = self.serving_call(model, backbone)

        def serve(*args):
            return self.postprocess(call(self.tokenize(dict(zip(names, args)))))

        return {"serving_default": (serve, specs)}

    def serving_call(self, model, backbone):
        """Returns `features -> model outputs` for one serving request (graph ops).

        By default the model runs once per length bucket of the request
        (`pipeline.SERVING_BUCKETS`), each bucket trimmed to its longest row.
        """
        del backbone
        return lambda features: pipeline.bucketed_call(model, features, self.serving_cuts())

    def serving_cuts(self):
        """The length buckets a request's rows run in (`pipeline.SERVING_BUCKETS`)."""
        return [b for b in pipeline.SERVING_BUCKETS if b < self.config.max_seq_length]

    def export_metadata(self):
        """Task settings clients of the export need, for its metadata file."""
        return {}

    def warmup_requests(self):
        """Requests of typical shapes for the export's TF Serving warmup records.

        Returns `[{input name: array}]` for `serving_default`. By default every
        input must be a batch of texts (`[None]` strings); each gets the same
        texts: one short, one about `max_seq_length` words, 16 of mixed
        lengths. Tasks with other inputs override this.
        """
        from tftransfer import serving_warmup

        specs = self.serving_inputs()
        if any(s.dtype != tf.string or s.shape.as_list() != [None] for s in specs.values()):
            return []
        return [
            {name: np.array(texts, dtype=object) for name in specs}
            for texts in serving_warmup.typical_texts(self.config.max_seq_length)
        ]

    @classmethod
    def format_result(cls, record, outputs):
        """Merges one example's serving outputs (NumPy) into its input record."""
        result = dict(record)
        # Sorted: a SavedModel signature returns its outputs sorted by name,
        # an in-process function in its own order; the JSONL should not differ.
        result.update({k: _to_json(outputs[k]) for k in sorted(outputs)})
        return result


def _to_json(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value
