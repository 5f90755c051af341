"""The token classifier run on packed rows (see `data/packing.py`).

The per-token counterpart of `PackedTextClassifier`: the backbone's layers run
on packed rows (`Backbone.packed_sequence_output`), the classifier's own head
tags every token, and `packing.unpack` puts each example's tags back in its
own row. Outputs equal the unpacked tagger's at every real token (zeros at
padding, which the loss ignores), so the task's loss and labels are used as
they are. Training uses it under `data.packing`, and NER exports for every
request of more than one window; evaluation uses the unpacked model, whose
weights it shares.

Example:

>>> import numpy as np
>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.data import packing
>>> from tftransfer.tasks.packed_token_classifier import PackedTokenClassifier
>>> from tftransfer.tasks.token_classification import (
...     TokenClassification,
...     TokenClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> task = TokenClassification(TokenClassificationConfig(labels=["O", "B-X", "I-X"]), tokenizer)
>>> model = task.build_model(backbone)
>>> packed_model = PackedTokenClassifier(backbone, model)
>>> words = tf.ragged.constant([["alice", "visited", "zurich"], ["hello"]])
>>> features = task.tagging.features(task.tagging.split(words), words, length=16)
>>> packed = packing.pack(features)
>>> packed["token_ids"].shape[0]  # both sentences in one row
1
>>> mask = features["padding_mask"].numpy().astype(bool)
>>> np.allclose(packed_model(packed)[mask], model(features)[mask], atol=1e-5)
True
"""

import keras

from tftransfer.backbones import Backbone
from tftransfer.data import packing


class PackedTokenClassifier(keras.Model):
    """Shares `backbone` and the head of `tagger`; takes packed features.

    Args:
        backbone: a `backbones.Backbone` that `supports_packing`.
        tagger: the unpacked token classifier built on `backbone`, with
            layers `head_dropout` and `logits` and no inputs besides the
            backbone's.

    Returns (when called):
        `[batch, length, tags]` logits in the unpacked layout.
    """

    def __init__(self, backbone, tagger, **kwargs):
        super().__init__(**kwargs)
        self.backbone = Backbone.wrap(backbone)
        if not self.backbone.supports_packing:
            name = type(self.backbone.model).__name__
            raise ValueError(f"data.packing needs a BERT-style backbone; got {name}")
        # The wrapper is a plain object; Keras tracks the weights through this.
        self.encoder = self.backbone.model
        self.head_dropout = tagger.get_layer("head_dropout")
        self.tagger_logits = tagger.get_layer("logits")

    def call(self, features, training=False):
        x = self.backbone.packed_sequence_output(features, training=training)
        logits = self.tagger_logits(self.head_dropout(x, training=training))
        return packing.unpack(logits, features)
