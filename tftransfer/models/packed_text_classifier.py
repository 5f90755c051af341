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
        pooling: `pooled` (BERT's pooler on [CLS]), `cls` or `mean`, as the
            classifier was built.
    """

    def __init__(self, backbone, classifier, pooling, **kwargs):
        super().__init__(backbone, classifier, **kwargs)
        self.pooling = pooling

    def call(self, features, training=False):
        x = self.backbone.packed_sequence_output(features, training=training)
        example_ids = features["example_ids"]
        flat = tf.reshape(x, [-1, x.shape[-1]])
        starts = features["example_starts"]
        if self.pooling == "mean":
            num_examples = tf.shape(starts)[0]
            ids = tf.reshape(example_ids, [-1])
            ids = tf.where(ids < 0, num_examples, ids)  # padding to a dropped segment
            total = tf.math.unsorted_segment_sum(flat, ids, num_examples + 1)[:-1]
            ones = tf.ones_like(ids, dtype=flat.dtype)[:, None]
            count = tf.math.unsorted_segment_sum(ones, ids, num_examples + 1)[:-1]
            pooled = total / tf.maximum(count, 1.0)
        else:
            pooled = tf.gather(flat, starts)
            if self.pooling == "pooled":
                pooled = self.backbone.pool(pooled)
        return self.head_logits(self.head_dropout(pooled, training=training))
