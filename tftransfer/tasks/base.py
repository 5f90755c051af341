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


class Task(abc.ABC):
    """What every task provides to the trainer, the evaluator and export."""

    name = None
    #: metric used to pick the best checkpoint (higher is better).
    primary_metric = None

    def __init__(self, config, tokenizer):
        self.config = config
        self.tokenizer = tokenizer

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
        """Maps a batch of raw example dicts to `(features, labels)` in-graph."""

    @abc.abstractmethod
    def build_model(self, backbone):
        """Returns a Keras functional model from backbone inputs to outputs."""

    @abc.abstractmethod
    def loss(self, labels, outputs):
        """Returns the per-example loss (shape [batch])."""

    @abc.abstractmethod
    def postprocess(self, outputs):
        """Maps model outputs to answers (graph ops, used by export too)."""

    @abc.abstractmethod
    def evaluate(self, outputs, examples):
        """Computes the task's real metrics from stacked outputs."""

    @abc.abstractmethod
    def serving_inputs(self):
        """Returns `{name: tf.TensorSpec}` of the raw serving inputs."""
