"""Tokenize once, bucket by length, batch and prefetch for training and evaluation.

Every example is tokenized once into a model-ready row padded to the task's
maximum length and cached in memory (`encoded_dataset`). Batches then group
rows of similar length (`data.bucket_boundaries`) and cut the padding beyond
their bucket's length, so a batch is padded only as far as its bucket needs
and compiled step functions see one shape per bucket (what XLA and TPUs
need). Evaluation of tasks with one row per example (text classification)
buckets too, and its batches carry each row's position so that results come
back in input order; tasks that window examples (NER, QA) evaluate raw
examples in input order instead (`raw_eval_dataset`).

Example:

>>> from tftransfer import configs, experiment
>>> from tftransfer.data import pipeline
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"path": ""}}},
... )
>>> run = experiment.build(params)
>>> stream = pipeline.train_dataset(run.task, run.train_examples, 16, params.data, seed=0)
>>> widths = {f["token_ids"].shape[1] for f, _ in stream.take(8)}
>>> widths <= {16, 32, 48, 64}  # each batch padded only to its bucket
True
>>> dataset = run.task.eval_dataset(run.train_examples, 16, params.data)
>>> sorted(i for _, index in dataset for i in index.numpy().tolist()) == list(range(64))
True
"""

import weakref

import tensorflow as tf

from tftransfer.config_checks import ConfigError
from tftransfer.data import packing

# Raw examples per tokenization call when encoding before batching.
ENCODE_CHUNK = 256
# Length buckets within one serving request: a batch of 64 short texts with
# one long one would otherwise all be padded to the long one.
SERVING_BUCKETS = (16, 32, 64, 128, 256)


def trim_to_longest(features):
    """Drops padding columns that no example in the batch uses.

    Args:
        features: dict of [batch, length] tensors with a `padding_mask`.
    """
    mask = features["padding_mask"]
    full = tf.shape(mask)[1]
    length = tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))
    length = tf.minimum(tf.maximum(length, 1), full)
    return {k: v[:, :length] for k, v in features.items()}


def packed_request_call(model, packed_model):
    """`features -> outputs` that packs a request's rows into shared rows.

    For serving: one call of `packed_model` (which takes `packing.pack`ed
    features and answers in request order) over rows as wide as the
    request's longest; a one-row request skips the packing, not the packed
    model: its blocks are the fused ones (`LeanBert`), and the export then
    stores only the weights they read.
    """
    dtype = model.output.dtype

    def call(features):
        features = trim_to_longest(features)
        rows = tf.cond(
            tf.shape(features["token_ids"])[0] > 1,
            lambda: packing.pack(features),
            lambda: packing.one_per_row(features),
        )
        return tf.cast(packed_model(rows, training=False), dtype)

    return call


def bucketed_call(model, features, boundaries, call=None):
    """`model(features)` run per length bucket, each bucket trimmed to its longest row.

    For serving: a request's rows are split by length (`tf.dynamic_partition`,
    in the graph) so that one long text does not pad all the short ones, and
    the outputs are put back in request order. Empty buckets are skipped.
    Per-position outputs (`[batch, length, ...]`: tagging, span logits) come
    back padded with zeros to the features' width, where the model's output
    for padding would have been.

    Args:
        model: a model with a single `[batch, ...]` output.
        features: dict of `[batch, length]` tensors with a `padding_mask`.
        boundaries: bucket lengths below the full length; rows longer than
            the last go to one more bucket.
        call: `features -> outputs` that computes what `model` does (another
            view of its weights, e.g. `PackedSpanFinder` on
            `packing.one_per_row`); by default `model` itself.
    """
    lengths = tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1)
    cuts = tf.constant(sorted(boundaries), tf.int32)
    bucket_ids = tf.searchsorted(cuts, lengths, side="left")
    num_buckets = len(boundaries) + 1
    positions = tf.range(tf.shape(lengths)[0])
    index_parts = tf.dynamic_partition(positions, bucket_ids, num_buckets)
    per_position = len(model.output.shape) >= 3
    width = tf.shape(features["padding_mask"])[1]
    empty_shape = [0] + list(model.output.shape[1:])
    if per_position:
        empty_shape = tf.concat([[0, width], list(model.output.shape[2:])], axis=0)

    forward = call or (lambda part: model(part, training=False))

    def run(part):
        out = tf.cast(forward(part), model.output.dtype)
        if per_position:
            pad = [[0, 0], [0, width - tf.shape(out)[1]]] + [[0, 0]] * (len(out.shape) - 2)
            out = tf.pad(out, pad)
        return out

    outputs = []
    for index in index_parts:
        part = trim_to_longest({k: tf.gather(v, index) for k, v in features.items()})
        outputs.append(
            tf.cond(
                tf.size(index) > 0,
                lambda part=part: run(part),
                lambda: tf.zeros(empty_shape, model.output.dtype),
            )
        )
    return tf.dynamic_stitch(index_parts, outputs)


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
    """One model-ready row per example (or per window), tokenized once and cached.

    Rows are `task.encode`'s: dicts of the model's features, padded to the
    task's maximum length, plus `labels` when `with_labels`.
    """
    parallel = data_config.num_parallel_calls or tf.data.AUTOTUNE
    dataset = batch(task.raw_dataset(examples, with_labels=with_labels), ENCODE_CHUNK)
    encode = _traced_encode(task, dataset.element_spec)
    dataset = dataset.map(
        lambda rows: encode(rows), num_parallel_calls=parallel, deterministic=True
    )
    dataset = dataset.unbatch()
    return dataset.cache() if data_config.cache else dataset


# One trace of `task.encode` per task and input structure, so the training
# and validation sets (and later prediction sets) share it: tf.data traces a
# plain function again for each `map`, and tracing keras-hub's BPE pre-split
# (a regex pass per special token) takes seconds for SmolLM2's tokenizer. The
# concrete function is called directly because a `tf.function` still
# retraces when one set is built under a distribution strategy's scope and
# the other is not. Traced without AutoGraph, as the serving functions are:
# the tasks' `encode` has no tensor-dependent Python control flow.
_ENCODERS = weakref.WeakKeyDictionary()


def _traced_encode(task, spec):
    traces = _ENCODERS.setdefault(task, {})
    key = repr(spec)
    if key not in traces:
        traces[key] = tf.function(task.encode, autograph=False).get_concrete_function(spec)
    return traces[key]


def boundaries(data_config, max_length):
    """The lengths batches are padded to: the configured ones below `max_length`, then it.

    With no bucketing configured, one bucket: `max_length` itself.
    """
    cuts = sorted({int(b) for b in data_config.bucket_boundaries if 0 < b < max_length})
    return cuts + [int(max_length)]


def bucket(dataset, batch_size, lengths, keys, drop_remainder, length_of=None):
    """Batches rows of similar length and cuts each batch to its bucket's length.

    Uses `group_by_window` rather than `bucket_by_sequence_length` because
    rows come padded already (with each task's own padding values, e.g. -1
    for ignored labels), so a batch only needs cutting, not re-padding.

    Args:
        dataset: rows (dicts with `padding_mask`, padded to `lengths[-1]`),
            or `(row, extra)` pairs whose `extra` is batched alongside.
        batch_size: rows per batch.
        lengths: sorted bucket lengths; a row goes to the first that holds it.
        keys: the per-position keys of a row, cut to the bucket's length.
        drop_remainder: drop each bucket's last partial batch (training);
            otherwise every row comes out once (evaluation).
        length_of: `row -> int64 length`; default: the row's real tokens
            (`padding_mask`). Cached frozen features carry their length.
    """
    paired = isinstance(dataset.element_spec, tuple)
    cuts = tf.constant(lengths, tf.int64)

    # `*element` is (row,) or (row, extra).
    def key(*element):
        if length_of is not None:
            length = tf.cast(length_of(element[0]), tf.int64)
        else:
            length = tf.reduce_sum(tf.cast(element[0]["padding_mask"], tf.int64))
        return tf.searchsorted(cuts, tf.reshape(length, [1]), side="left", out_type=tf.int64)[0]

    def cut(width, *element):
        rows = dict(element[0])
        for k in keys:
            rows[k] = rows[k][:, :width]
        return (rows,) + tuple(element[1:]) if paired else rows

    def reduce(key_value, window):
        batches = window.batch(batch_size, drop_remainder=drop_remainder)
        return batches.map(lambda *element: cut(cuts[key_value], *element))

    if len(lengths) == 1:
        # A Python width keeps the batch shape static: the whole shape is
        # known when drop_remainder is set (what TPUs need).
        batches = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return batches.map(lambda *element: cut(int(lengths[0]), *element))
    return dataset.group_by_window(key, reduce, window_size=batch_size)


def _bucket_rows(task, dataset, batch_size, data_config, drop_remainder, fixed_shapes=False):
    """`bucket` with the task's length and the configured boundaries (one, if `fixed_shapes`)."""
    row_spec = dataset.element_spec
    if isinstance(row_spec, tuple):  # (row, index)
        row_spec = row_spec[0]
    lengths = boundaries(data_config, task.config.max_seq_length)
    if fixed_shapes:
        lengths = lengths[-1:]
    keys = task.position_keys(list(row_spec))
    return bucket(dataset, batch_size, lengths, keys, drop_remainder)


def _split_labels(rows):
    rows = dict(rows)
    labels = rows.pop("labels")
    return rows, labels


def train_dataset(
    task,
    examples,
    batch_size,
    data_config,
    seed,
    skip_steps=0,
    encoded=None,
    static_shapes=True,
    fixed_shapes=False,
):
    """An endless, shuffled stream of `(features, labels)` training batches.

    Shuffling uses a fixed seed and bucketing is deterministic, so resuming
    from a checkpoint at step `s` with `skip_steps = s` yields exactly the
    batches the interrupted run would have seen next.

    Args:
        encoded: the `encoded_dataset` of `examples` (built here when not
            given), e.g. after counting its rows.
        static_shapes: under `data.packing`, round packed row counts so a
            compiled step sees few shapes (see `packing.pack_batch`).
        fixed_shapes: every batch `[batch_size, max_seq_length]`, with the
            whole shape in the element spec (TPUs compile one program per
            shape and need them static): no length buckets, no packing.
    """
    if fixed_shapes and data_config.packing:
        raise ConfigError("data.packing gives batches of varying rows; set data.packing=false")
    dataset = encoded if encoded is not None else encoded_dataset(task, examples, data_config)
    dataset = dataset.shuffle(max(1, data_config.shuffle_buffer_size), seed=seed)
    dataset = dataset.repeat()
    if data_config.packing:
        # Packed rows are max_seq_length wide and mix lengths: no buckets.
        dataset = dataset.batch(batch_size, drop_remainder=True)
        dataset = dataset.map(_split_labels, num_parallel_calls=2, deterministic=True)
        dataset = dataset.map(
            lambda features, labels: packing.pack_batch(features, labels, static_shapes),
            num_parallel_calls=2,
            deterministic=True,
        )
    else:
        dataset = _bucket_rows(
            task, dataset, batch_size, data_config, drop_remainder=True, fixed_shapes=fixed_shapes
        )
        dataset = dataset.map(_split_labels, num_parallel_calls=2, deterministic=True)
    if task.training_batch is not None:
        # Per-batch work that must differ each epoch (e.g. masked-LM masks).
        dataset = dataset.map(task.training_batch, num_parallel_calls=2, deterministic=True)
    if fixed_shapes:
        # Per-batch transforms (masked-LM masks) may lose the batch size.
        dataset = dataset.map(
            lambda *batch: tf.nest.map_structure(
                lambda t: tf.ensure_shape(t, [batch_size] + t.shape[1:]), batch
            )
        )
    if skip_steps:
        dataset = dataset.skip(skip_steps)
    return dataset.prefetch(data_config.prefetch)


def encoded_eval_dataset(task, examples, batch_size, data_config):
    """`(features, index)` batches of encoded rows, bucketed like training.

    For tasks whose `encode` makes one row per example: every example is
    tokenized once (and cached), and batches group rows of similar length,
    so they are not in input order: put results back with `index`. With
    `data_config.packing`, batches come in input order at full width, for
    a `task.packed_forward` that trims and packs them (mixed lengths share
    rows best).
    """
    # Labelled examples are encoded with their labels, then dropped: the
    # validation set then shares the training set's trace of `task.encode`
    # (seconds per run, most for SmolLM2's tokenizer).
    labelled = examples.labels is not None
    rows = encoded_dataset(task, examples, data_config, with_labels=labelled)
    if labelled:
        rows = rows.map(lambda row: {k: v for k, v in row.items() if k != "labels"})
    dataset = tf.data.Dataset.zip(rows, tf.data.Dataset.range(len(examples)))
    if data_config.packing:
        dataset = batch(dataset, batch_size)
    else:
        dataset = _bucket_rows(task, dataset, batch_size, data_config, drop_remainder=False)
    return dataset.prefetch(data_config.prefetch)


def raw_eval_dataset(task, examples, batch_size, data_config):
    """`(raw example batch, index)` in input order, for tasks whose `forward` encodes.

    Token classification and question answering window each example inside
    `forward` (one example, several rows), so their evaluation batches hold
    whole examples, plus what the task's `pretokenize` adds (subword ids,
    computed once per run with `data.cache`); `forward` runs the windows by
    length bucket (`bucketed_call`).
    """
    dataset = task.raw_dataset(examples, with_labels=False)
    dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.range(len(examples)))
    dataset = batch(dataset, batch_size)
    if task.pretokenize is not None:
        # Tokenized here, so with `data.cache` once per run, not at every evaluation.
        dataset = dataset.map(lambda features, index: (task.pretokenize(features), index))
    if data_config.cache:
        dataset = dataset.cache()
    return dataset.prefetch(data_config.prefetch)
