"""The Task interface and the task registry.

A task owns everything that depends on what is predicted: how raw examples
become model inputs and targets, the head on top of the backbone, the loss,
the real metric, and how logits become answers (in Python and in the exported
graph). The trainer only sees `(features, labels)` batches, a model and a loss.

Example:

```python
from tftransfer import tasks

task_cls = tasks.get("text_classification")
```
"""

import abc

from tftransfer.data import pipeline, readers

_REGISTRY = {}


def register(name):
    """Class decorator that makes a task available to configs by name."""

    def decorator(cls):
        if name in _REGISTRY:
            raise ValueError(f"task `{name}` is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get(name):
    """Returns the task class registered under `name`."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task `{name}`; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


# Length buckets within one serving request: a batch of 64 short texts with
# one long one would otherwise all be padded to the long one.
SERVING_BUCKETS = (16, 32, 64, 128, 256)


class Task(abc.ABC):
    """What every task provides to the trainer, the evaluator and export."""

    name = None
    #: metric used to pick the best checkpoint (higher is better).
    primary_metric = None
    #: training examples are made by `encode` before batching (e.g. one
    #: sentence becomes several windows), not by `preprocess` per batch.
    encodes_examples = False
    #: encoded `labels` have one value per sequence position (trimmed with
    #: the features), rather than a fixed number per example.
    labels_per_position = False

    def __init__(self, config, tokenizer):
        self.config = config
        self.tokenizer = tokenizer

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
    def tokenize(self, inputs):
        """Maps raw serving inputs to model features, in-graph.

        Shared by `preprocess` (tf.data) and the exported serving function, so
        training and serving tokenize identically.
        """

    @abc.abstractmethod
    def preprocess(self, batch):
        """Maps a batch of raw example dicts to `(features, labels)` in-graph.

        For tasks with `encodes_examples`, this makes evaluation inputs;
        training inputs come from `encode`.
        """

    def encode(self, batch):
        """Maps raw example dicts to a batch of model-ready training examples.

        Only for tasks with `encodes_examples`. Returns a dict of tensors with
        one row per training example (there may be more rows than inputs),
        features plus `labels`, with a `padding_mask`.
        """
        raise NotImplementedError

    def calibrate(self, validation_metrics):
        """Sets values chosen on validation data (e.g. a threshold).

        Returns:
            Whether `self.config` changed (the caller saves it).
        """
        return False

    def forward(self, model, features):
        """Evaluation/prediction outputs for one batch of `preprocess` features."""
        return model(features, training=False)

    @abc.abstractmethod
    def build_model(self, backbone):
        """Returns a Keras functional model from backbone inputs to outputs."""

    def build_packed_model(self, model, backbone):
        """A model sharing `model`'s weights that trains on packed rows.

        For `data.packing` (see `data/packing.py`); None when the task
        cannot train on packed rows.
        """
        del model, backbone
        return None

    @abc.abstractmethod
    def loss(self, labels, outputs):
        """Returns the per-example loss (shape [batch])."""

    @abc.abstractmethod
    def postprocess(self, outputs):
        """Maps model outputs to answers (graph ops, used by export too)."""

    @abc.abstractmethod
    def evaluate(self, outputs, examples):
        """Computes the task's real metrics.

        Args:
            outputs: one `forward` output per example, in example order
                (NumPy arrays).
            examples: the labelled examples they were computed for.
        """

    @abc.abstractmethod
    def serving_inputs(self):
        """Returns `{name: tf.TensorSpec}` of the raw serving inputs."""

    def serving_functions(self, model):
        """Returns `{signature name: (function, input specs)}` for export.

        The default signature is `tokenize` -> `serving_call` -> `postprocess`.
        """
        specs = self.serving_inputs()
        names = list(specs)
        call = self.serving_call(model)

        def serve(*args):
            return self.postprocess(call(self.tokenize(dict(zip(names, args)))))

        return {"serving_default": (serve, specs)}

    def serving_call(self, model):
        """Returns `features -> model outputs` for one serving request (graph ops).

        By default the model runs once per length bucket of the request
        (`SERVING_BUCKETS`), each bucket trimmed to its longest row.
        """
        cuts = [b for b in SERVING_BUCKETS if b < self.config.max_seq_length]
        return lambda features: pipeline.bucketed_call(model, features, cuts)

    @classmethod
    def format_result(cls, record, outputs):
        """Merges one example's serving outputs (NumPy) into its input record."""
        result = dict(record)
        result.update({k: _to_json(v) for k, v in outputs.items()})
        return result


def _to_json(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value
