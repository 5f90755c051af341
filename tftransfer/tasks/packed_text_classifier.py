"""The text classifier run on packed rows (see `data/packing.py`).

keras-hub's `BertBackbone` takes a padding mask but no attention mask or
positions, so packed rows cannot go through it as a whole. This model calls
the backbone's own layers (the same objects, so the same weights) with an
attention mask that keeps each example to itself and positions that restart
per example, then pools each example and applies the classifier's own head.
Its outputs equal the unpacked classifier's, one row per example in batch
order. Training uses it under `data.packing`, and exported serving functions
for every request of more than one text; evaluation uses the unpacked model,
whose weights it shares.

Example:

```python
model = task.build_model(backbone)
packed = PackedTextClassifier(backbone, model, pooling="pooled")
logits = packed(packed_features)  # [batch, num_labels]
```
"""

import keras
import keras_hub
import tensorflow as tf


class PackedTextClassifier(keras.Model):
    """Shares `backbone` and the head of `classifier`; takes packed features.

    Args:
        backbone: a `keras_hub.models.BertBackbone` (or a subclass).
        classifier: the unpacked classifier built on `backbone`, with layers
            `head_dropout` and `logits`.
        pooling: `pooled` (BERT's pooler on [CLS]), `cls` or `mean`, as the
            classifier was built.
    """

    def __init__(self, backbone, classifier, pooling, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, keras_hub.models.BertBackbone):
            raise ValueError(
                f"data.packing needs a BERT-style backbone; got {type(backbone).__name__}"
            )
        self.backbone = backbone
        self.head_dropout = classifier.get_layer("head_dropout")
        self.classifier_logits = classifier.get_layer("logits")
        self.pooling = pooling

    def call(self, features, training=False):
        b = self.backbone
        example_ids = features["example_ids"]
        tokens = b.token_embedding(features["token_ids"])
        positions = b.position_embedding(tokens, positions=features["position_ids"])
        segments = b.segment_embedding(features["segment_ids"])
        x = b.embeddings_add((tokens, positions, segments))
        x = b.embeddings_layer_norm(x)
        x = b.embeddings_dropout(x, training=training)
        # Padding tokens (-1) see nothing; their outputs are never read.
        mask = tf.logical_and(
            tf.equal(example_ids[:, :, None], example_ids[:, None, :]),
            (example_ids >= 0)[:, None, :],
        )
        for layer in b.transformer_layers:
            x = layer(x, attention_mask=mask, training=training)
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
                pooled = b.pooled_dense(pooled)
        return self.classifier_logits(self.head_dropout(pooled, training=training))
