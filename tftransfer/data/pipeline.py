"""Batching, padding and prefetching for training and evaluation.

The task tokenizes inside `tf.data` (`task.preprocess`); this module decides
the order, the batch shapes and what is cached.

Example:

```python
ds = pipeline.eval_dataset(task, examples, batch_size=64, data_config=params.data)
```
"""

import tensorflow as tf

# Raw examples per `task.encode` call when encoding before batching.
ENCODE_CHUNK = 256


def trim_to_longest(features, multiple=0):
    """Drops padding columns that no example in the batch uses.

    Rounds the kept length up to `multiple` so that a training function sees
    only a few distinct shapes (max_len / multiple of them).

    Args:
        features: dict of [batch, length] tensors with a `padding_mask`.
        multiple: round the length up to this multiple (0 = exact length).
    """
    mask = features["padding_mask"]
    full = tf.shape(mask)[1]
    length = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))
    if multiple:
        length = (length + multiple - 1) // multiple * multiple
    length = tf.minimum(tf.maximum(length, 1), full)
    return {k: v[:, :length] for k, v in features.items()}


def batch(dataset, batch_size, drop_remainder=False):
    """Batches; elements of varying length (e.g. token lists) become ragged."""
    varying = any(
        spec.shape.rank and not spec.shape.is_fully_defined()
        for spec in tf.nest.flatten(dataset.element_spec)
    )
    if varying:
        return dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def encoded_dataset(task, examples, data_config, with_labels=True):
    """Model-ready examples of a task with `encodes_examples`, cached.

    Tokenizes once: the returned dataset caches in memory, and every dataset
    built on it (each epoch, each resume) reads the cache.
    """
    parallel = data_config.num_parallel_calls or tf.data.AUTOTUNE
    dataset = batch(task.raw_dataset(examples, with_labels=with_labels), ENCODE_CHUNK)
    dataset = dataset.map(task.encode, num_parallel_calls=parallel, deterministic=True)
    return dataset.unbatch().cache()


def _finish(dataset, task, data_config):
    parallel = data_config.num_parallel_calls or tf.data.AUTOTUNE
    multiple = data_config.pad_to_multiple_of

    def preprocess(batch):
        features, labels = task.preprocess(batch)
        if multiple > 0 and "padding_mask" in features:
            features = trim_to_longest(features, multiple)
        return features, labels

    return dataset.map(preprocess, num_parallel_calls=parallel, deterministic=True)


def train_dataset(task, examples, batch_size, data_config, seed, skip_examples=0, encoded=None):
    """An endless, shuffled stream of training batches.

    Shuffling uses a fixed seed, so resuming from a checkpoint at step `s`
    with `skip_examples = s * batch_size` yields exactly the batches the
    interrupted run would have seen next.

    Args:
        encoded: for tasks with `encodes_examples`, the `encoded_dataset` of
            `examples` (built here when not given); examples then count
            encoded rows (e.g. windows), not sentences.
    """
    if task.encodes_examples:
        dataset = encoded if encoded is not None else encoded_dataset(task, examples, data_config)
        buffer = max(1, data_config.shuffle_buffer_size)
    else:
        dataset = task.raw_dataset(examples, with_labels=True)
        buffer = max(1, min(len(examples), data_config.shuffle_buffer_size))
    dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    if skip_examples:
        dataset = dataset.skip(skip_examples)
    dataset = batch(dataset, batch_size, drop_remainder=True)
    if task.encodes_examples:
        multiple = data_config.pad_to_multiple_of

        def split_labels(rows):
            rows = dict(rows)
            labels = rows.pop("labels")
            if multiple > 0:
                rows = trim_to_longest(rows, multiple)
                if task.labels_per_position:
                    labels = labels[:, : tf.shape(rows["padding_mask"])[1]]
            return rows, labels

        dataset = dataset.map(split_labels, num_parallel_calls=2, deterministic=True)
    else:
        dataset = _finish(dataset, task, data_config)
    return dataset.prefetch(data_config.prefetch)


def eval_dataset(task, examples, batch_size, data_config, with_labels=True):
    """Batches in input order, every example exactly once."""
    if task.encodes_examples:
        with_labels = False  # such tasks evaluate from the examples themselves
    dataset = task.raw_dataset(examples, with_labels=with_labels)
    dataset = batch(dataset, batch_size)
    dataset = _finish(dataset, task, data_config)
    if data_config.cache:
        dataset = dataset.cache()
    return dataset.prefetch(data_config.prefetch)
