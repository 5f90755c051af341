"""The base of models that run a task's head on packed rows (see `data/packing.py`).

`PackedTextClassifier`, `PackedTokenClassifier` and `PackedSpanFinder` share this: the backbone
(which must be able to pack) and the unpacked model's own head layers,
`head_dropout` and `logits`, so that both views train the same weights.

Example:

>>> from tftransfer import backbones
>>> from tftransfer.models.packed_head_model import PackedHeadModel
>>> from tftransfer.tasks.text_classification import (
...     TextClassification,
...     TextClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> task = TextClassification(TextClassificationConfig(labels=["neg", "pos"]), tokenizer)
>>> model = task.build_model(backbone)
>>> PackedHeadModel(backbone, model).head_logits is model.get_layer("logits")
True
"""

import keras

from tftransfer.backbones import Backbone


class PackedHeadModel(keras.Model):
    """Holds `backbone` and the head of the unpacked `model` built on it.

    Args:
        backbone: a `backbones.Backbone` that `supports_packing`.
        model: the unpacked task model built on `backbone`, with layers
            `head_dropout` and `logits` (`heads.dense_head`).
        logits_layer: the name of `model`'s logits layer.
    """

    def __init__(self, backbone, model, logits_layer="logits", **kwargs):
        super().__init__(**kwargs)
        self.backbone = Backbone.wrap(backbone)
        if not self.backbone.supports_packing:
            name = type(self.backbone.model).__name__
            raise ValueError(f"data.packing needs a BERT-style backbone; got {name}")
        # The wrapper is a plain object; Keras tracks the weights through this.
        self.encoder = self.backbone.model
        self.head_dropout = model.get_layer("head_dropout")
        self.head_logits = model.get_layer(logits_layer)
