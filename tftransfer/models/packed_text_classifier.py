"""The text classifier run on packed rows (see `data/packing.py`).

keras-hub's `BertBackbone` takes a padding mask but no attention mask or
positions, so packed rows cannot go through it as a whole;
`Backbone.packed_sequence_output` runs its layers with an attention mask that
keeps each example to itself. This model pools each example of that output
and applies the classifier's own head.
Its outputs equal the unpacked classifier's, one row per example in batch
order. Training uses it under `data.packing`, evaluation in runs that pack
(`Task.packed_forward`), and exported serving functions for every request of
more than one text; it shares the unpacked model's weights.

Example:

>>> import numpy as np
>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.data import packing
>>> from tftransfer.models.packed_text_classifier import PackedTextClassifier
>>> from tftransfer.tasks.text_classification import (
...     TextClassification,
...     TextClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> task = TextClassification(TextClassificationConfig(labels=["neg", "pos"]), tokenizer)
>>> model = task.build_model(backbone)
>>> packed_model = PackedTextClassifier(backbone, model, pooling="pooled")
>>> features = task.tokenize({"text": tf.constant(["great movie", "what a lovely day"])})
>>> np.allclose(packed_model(packing.pack(features)), model(features), atol=1e-5)
True
"""

import tensorflow as tf

from tftransfer.models.packed_head_model import PackedHeadModel


class PackedTextClassifier(PackedHeadModel):
    """Shares `backbone` and the head of `classifier`; takes packed features.

    Args:
        backbone: a `backbones.Backbone` that `supports_packing`.
        classifier: the unpacked classifier built on `backbone`, with layers
            `head_dropout` and `logits`.
        pooling: `pooled` (BERT's pooler on [CLS]), `cls`, `mean` or `last`,
            as the classifier was built.
    """

    def __init__(self, backbone, classifier, pooling, **kwargs):
        super().__init__(backbone, classifier, **kwargs)
        self.pooling = pooling

    def call(self, features, training=False):
        if self.pooling == "mean":
            pooled = self._mean(features, training)
        else:
            # One token per example is read (the first, or the last under
            # `last`), so the last block computes only those tokens' outputs.
            at = features["example_starts"] if self.pooling != "last" else _example_ends(features)
            pooled = self.backbone.packed_sequence_output(features, training, outputs_at=at)
            if self.pooling == "pooled":
                pooled = self.backbone.pool(pooled)
        return self.head_logits(self.head_dropout(pooled, training=training))

    def _mean(self, features, training):
        x = self.backbone.packed_sequence_output(features, training=training)
        flat = tf.reshape(x, [-1, x.shape[-1]])
        num_examples = tf.shape(features["example_starts"])[0]
        ids = _flat_example_ids(features, num_examples)
        total = tf.math.unsorted_segment_sum(flat, ids, num_examples + 1)[:-1]
        ones = tf.ones_like(ids, dtype=flat.dtype)[:, None]
        count = tf.math.unsorted_segment_sum(ones, ids, num_examples + 1)[:-1]
        return total / tf.maximum(count, 1.0)


def _flat_example_ids(features, num_examples):
    """Each flattened token's example; padding's goes to one more, dropped segment."""
    ids = tf.reshape(features["example_ids"], [-1])
    return tf.where(ids < 0, num_examples, ids)


def _example_ends(features):
    """Each example's last token, as a position in the flattened rows."""
    num_examples = tf.shape(features["example_starts"])[0]
    ids = _flat_example_ids(features, num_examples)
    positions = tf.range(tf.shape(ids)[0], dtype=ids.dtype)
    return tf.math.unsorted_segment_max(positions, ids, num_examples + 1)[:-1]
