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
import time
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


def _rows(encoded):
    """The encoded rows as `{key: [rows, ...]}` NumPy arrays, in order."""
    parts = {}
    for batch in encoded.batch(4096):
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def compute(feature_model, head, encoded, batch_size, widths):
    """Runs `feature_model` (inference mode) once over the encoded training rows.

    Rows go through in order of length, each batch cut to the first of
    `widths` that holds its longest row: a batch pads little (as a packed
    training batch does) and the compiled function sees one shape per width.

    Args:
        feature_model, head: the task's split model (`Task.feature_model`).
        encoded: the encoded training rows (`pipeline.encoded_dataset`).
        batch_size: rows per call.
        widths: increasing row widths, the last the task's `max_seq_length`
            (`pipeline.boundaries`).
    """
    start_time = time.perf_counter()
    rows = _rows(encoded)
    labels = rows.pop("labels")
    lengths = rows["padding_mask"].astype(np.int64).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    call = tf.function(lambda x: feature_model(x, training=False), reduce_retracing=False)
    features = None
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="features", unit=" batches", leave=False, disable=None):
        index = order[start : start + batch_size]
        longest = max(1, int(lengths[index].max()))
        width = next(w for w in widths if w >= longest)
        out = call({k: tf.constant(v[index, :width]) for k, v in rows.items()})
        out = tf.cast(out, tf.float32).numpy()
        if features is None:
            features = np.zeros((len(order),) + out.shape[1:], np.float32)
        features[index] = out
    return FeatureCache(features, lengths, labels, head, time.perf_counter() - start_time)


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
