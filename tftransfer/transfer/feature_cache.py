"""Frozen-feature caching: the frozen backbone runs once, the head trains on its outputs.

Under `transfer.strategy: frozen` the backbone's output for a training text
never changes (its weights are fixed and it runs without dropout), so
computing it at every step of every epoch repeats the same work. `compute`
runs the task's feature model (backbone and pooling) once over the encoded
training rows; `train_dataset` then streams `(feature vector, label)`
batches made exactly as the uncached stream makes its batches (same
shuffle, same length buckets or the same packed-batch order), so the head
sees the same examples in the same batches and trains to the same weights.

Example:

>>> import numpy as np, tensorflow as tf
>>> from tftransfer.data.data_config import DataConfig
>>> lengths = np.array([3, 20, 5, 22])  # buckets of 16 and 32 tokens
>>> cache = FeatureCache(np.eye(4, dtype="float32"), lengths, labels=np.arange(4))
>>> stream = train_dataset(cache, 2, DataConfig(shuffle_buffer_size=1), max_length=64, seed=0)
>>> [labels.numpy().tolist() for _, labels in stream.take(2)]  # a batch per bucket
[[0, 2], [1, 3]]
"""

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tftransfer.data import pipeline


@dataclasses.dataclass
class FeatureCache:
    """The frozen feature model's outputs on every training row.

    Attributes:
        features: `[rows, ...]` float32, the head's input for each row.
        lengths: `[rows]` tokens of each row (the length buckets' key).
        labels: `[rows, ...]` each row's labels.
    """

    features: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    #: the model the training step calls on `features` (the task's head).
    head: Any = None
    #: how long `compute` took.
    seconds: float = 0.0

    @property
    def megabytes(self):
        return self.features.nbytes / 2**20


def compute(feature_model, encoded, batch_size, num_rows=None):
    """Runs `feature_model` (inference mode) over the encoded training rows, in order."""
    rows = encoded.batch(batch_size)
    features, lengths, labels = [], [], []
    for batch in tqdm(
        rows,
        desc="features",
        unit=" batches",
        leave=False,
        disable=None,
        total=None if num_rows is None else -(-num_rows // batch_size),
    ):
        batch = dict(batch)
        labels.append(batch.pop("labels").numpy())
        lengths.append(tf.reduce_sum(tf.cast(batch["padding_mask"], tf.int32), axis=1).numpy())
        out = feature_model(pipeline.trim_to_longest(batch), training=False)
        features.append(tf.cast(out, tf.float32).numpy())
    return FeatureCache(np.concatenate(features), np.concatenate(lengths), np.concatenate(labels))


def train_dataset(
    cache,
    batch_size,
    data_config,
    max_length,
    seed,
    skip_steps=0,
    packing=False,
    fixed_shapes=False,
):
    """The endless `(features, labels)` stream the uncached run would batch alike.

    Args:
        cache: a `FeatureCache`.
        batch_size, seed, skip_steps: as for `pipeline.train_dataset`.
        data_config: the run's `DataConfig` (shuffle buffer, buckets, prefetch).
        max_length: the task's `max_seq_length`.
        packing: the uncached run packs: its batches take rows in shuffled
            order with no length buckets; so do these.
        fixed_shapes: one bucket (TPUs), as `pipeline.train_dataset`.
    """
    rows = tf.data.Dataset.from_tensor_slices(
        {"features": cache.features, "length": cache.lengths, "labels": cache.labels}
    )
    rows = rows.shuffle(max(1, data_config.shuffle_buffer_size), seed=seed).repeat()
    if packing:
        batches = rows.batch(batch_size, drop_remainder=True)
    else:
        lengths = pipeline.boundaries(data_config, max_length)
        if fixed_shapes:
            lengths = lengths[-1:]
        batches = pipeline.bucket(
            rows, batch_size, lengths, [], drop_remainder=True, length_of=lambda r: r["length"]
        )
    batches = batches.map(lambda b: (b["features"], b["labels"]))
    if skip_steps:
        batches = batches.skip(skip_steps)
    return batches.prefetch(data_config.prefetch)
