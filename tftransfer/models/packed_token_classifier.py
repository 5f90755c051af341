"""The token classifier run on packed rows (see `data/packing.py`).

The per-token counterpart of `PackedTextClassifier`: the backbone's layers run
on packed rows (`Backbone.packed_sequence_output`), the classifier's own head
tags every token, and `packing.unpack` puts each example's tags back in its
own row. Outputs equal the unpacked tagger's at every real token (zeros at
padding, which the loss ignores), so the task's loss and labels are used as
they are. Training uses it under `data.packing`, evaluation in runs that pack
(`Task.packed_forward`), and NER exports for every request of more than one
window; it shares the unpacked model's weights.

Example:

>>> import numpy as np
>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.data import packing
>>> from tftransfer.models.packed_token_classifier import PackedTokenClassifier
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

from tftransfer.data import packing
from tftransfer.models.packed_head_model import PackedHeadModel


class PackedTokenClassifier(PackedHeadModel):
    """Shares `backbone` and the head of `model`; takes packed features.

    Args:
        backbone: a `backbones.Backbone` that `supports_packing`.
        model: the unpacked token classifier built on `backbone`, with
            layers `head_dropout` and `logits` and no inputs besides the
            backbone's.

    Returns (when called):
        `[batch, length, tags]` logits in the unpacked layout.
    """

    def call(self, features, training=False):
        x = self.backbone.packed_sequence_output(features, training=training)
        logits = self.head_logits(self.head_dropout(x, training=training))
        return packing.unpack(logits, features)
