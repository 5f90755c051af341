"""The transfer-strategy interface, its registry, and the backbone's layer depths.

A strategy decides which weights a run trains and how fast: it may change
the model once it is built (freeze layers, add adapters), give variables
their own learning-rate multipliers, change the trained set as training goes
on, and turn the trained model back into a plain one before export. Each
strategy is one module in this package that registers itself.

Example:

>>> from tftransfer import transfer
>>> sorted(transfer.registered())
['distill', 'frozen', 'full', 'gradual_unfreezing', 'llrd', 'lora', 'scratch']
"""

from tftransfer import compat

_REGISTRY = {}


def register(cls):
    """Class decorator: makes a strategy available as `transfer.strategy: <cls.name>`."""
    _REGISTRY[cls.name] = cls
    return cls


def registered():
    return dict(_REGISTRY)


def get(config):
    """The strategy object for a `TransferConfig`."""
    if config.strategy not in _REGISTRY:
        raise ValueError(
            f"transfer.strategy must be one of: {', '.join(sorted(_REGISTRY))}; "
            f"got `{config.strategy}`"
        )
    return _REGISTRY[config.strategy](config)


class LayerDepths:
    """Each variable's depth in the network: 0 = embeddings, 1..L = blocks, L+1 = top.

    The top holds what sits above the last block: the final norm, BERT's
    pooler and the task's head. Depths order layers for layer-wise learning
    rates and gradual unfreezing.

    Args:
        model: the task's model.
        backbone: the `backbones.Backbone` inside it.
    """

    def __init__(self, model, backbone):
        inside = {id(v) for v in backbone.model.variables}
        blocks = {}
        for v in backbone.model.variables:
            found = compat.block_of_path(v.path)  # keras-hub's block names, checked by compat
            if found is not None:
                blocks[id(v)] = found + 1
        if not blocks:
            raise ValueError(
                f"{type(backbone.model).__name__}: no `transformer_layer_<i>` blocks found; "
                "layer-wise strategies need a keras-hub transformer backbone"
            )
        self.num_layers = max(blocks.values())
        self.top = self.num_layers + 1
        self._depth = {}
        for v in model.variables:
            if id(v) in blocks:
                self._depth[id(v)] = blocks[id(v)]
            elif id(v) in inside and compat.is_embedding_path(v.path):
                self._depth[id(v)] = 0
            else:
                self._depth[id(v)] = self.top

    def __call__(self, variable):
        return self._depth[id(variable)]


class TransferStrategy:
    """Base class: `full` fine-tuning, which changes nothing.

    Args:
        config: the run's `TransferConfig`.
    """

    name = "full"
    #: build the backbone with random weights instead of loading them.
    random_init = False
    #: train on `transfer.teacher`'s outputs (`tftransfer.distillation`).
    uses_teacher = False
    #: the backbone's dropout rate in training instead of its own (None = its own).
    backbone_dropout = None

    def __init__(self, config):
        self.config = config

    def prepare(self, model, backbone):
        """Changes the built model before the optimizer is made or a checkpoint read."""

    def caches_features(self):
        """Whether the head trains on backbone outputs computed once (`feature_cache`)."""
        return False

    def learning_rate_multipliers(self, model, backbone):
        """`{id(variable): factor}` on `trainer.learning_rate`; None = 1 for all."""
        return None

    def trained_variables(self, model, backbone, steps_per_epoch):
        """A `step -> variables` function when the trained set changes in training.

        None means the model's `trainable_variables` throughout.
        """
        return None

    def finalize(self, model):
        """Makes the trained model a plain one (for evaluation and export); in place."""
