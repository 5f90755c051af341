"""One answer per document from a model that reads one window at a time.

Takes `[documents, max_windows, length]` features (`text_windows.split`,
empty windows all padding), runs the per-window model on the real windows
only, and aggregates the window logits of each document: their mean, their
maximum, or an attention-weighted mean whose weights the window model scores
(a softmax over each document's windows). The same layer runs in training,
evaluation and the exported serving function, so a raw long text in gives
one answer out.

Example:

>>> import keras
>>> import numpy as np
>>> from tftransfer.models.windowed_classifier import WindowedClassifier
>>> x = keras.Input((None,), dtype="int32", name="token_ids")
>>> m = keras.Input((None,), dtype="int32", name="padding_mask")
>>> logits = keras.ops.cast(keras.ops.sum(x * m, axis=1, keepdims=True), "float32")
>>> window_model = keras.Model({"token_ids": x, "padding_mask": m}, {"logits": logits})
>>> documents = WindowedClassifier(window_model, "mean")
>>> features = {  # 2 documents of up to 3 windows: 2 windows, then 1
...     "token_ids": np.array([[[1, 2], [3, 0], [0, 0]], [[5, 0], [0, 0], [0, 0]]]),
...     "padding_mask": np.array([[[1, 1], [1, 0], [0, 0]], [[1, 0], [0, 0], [0, 0]]]),
... }
>>> documents(features).numpy().tolist()
[[3.0], [5.0]]
"""

import keras
import tensorflow as tf

from tftransfer.data import pipeline

AGGREGATION = ("mean", "max", "attention")


class WindowedClassifier(keras.Model):
    """Aggregates a window model's logits per document.

    Args:
        window_model: `[windows, length]` features -> `{"logits": [windows,
            k]}`, plus `"score": [windows, 1]` for `attention`.
        aggregation: `mean`, `max` or `attention`.
    """

    def __init__(self, window_model, aggregation, **kwargs):
        super().__init__(**kwargs)
        if aggregation not in AGGREGATION:
            raise ValueError(f"aggregation must be one of {AGGREGATION}, got {aggregation!r}")
        self.window_model = window_model
        self.aggregation = aggregation

    def call(self, features, training=False):
        mask = features["padding_mask"]
        shape = tf.shape(mask)
        documents, windows = shape[0], shape[1]
        # A real window starts with a real token ([CLS], or a decoder's
        # first token); empty windows are all padding.
        real = tf.reshape(tf.cast(mask[:, :, 0], tf.bool), [-1])
        rows = {
            k: tf.boolean_mask(tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0)), real)
            for k, v in features.items()
        }
        outputs = self.window_model(pipeline.trim_to_longest(rows), training=training)
        logits = tf.cast(outputs["logits"], tf.float32)
        document = tf.cast(tf.where(real)[:, 0], tf.int32) // windows
        if self.aggregation == "mean":
            return tf.math.unsorted_segment_mean(logits, document, documents)
        if self.aggregation == "max":
            return tf.math.unsorted_segment_max(logits, document, documents)
        score = tf.cast(outputs["score"][:, 0], tf.float32)
        score -= tf.gather(tf.math.unsorted_segment_max(score, document, documents), document)
        weight = tf.exp(score)
        weight /= tf.gather(tf.math.unsorted_segment_sum(weight, document, documents), document)
        return tf.math.unsorted_segment_sum(weight[:, None] * logits, document, documents)
