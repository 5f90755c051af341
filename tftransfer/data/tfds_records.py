"""The examples of a TensorFlow Datasets split as plain Python records.

Every reader that accepts `path: tfds:<name>` (text classification, token
classification, question answering, language-model text) iterates these
records, so a TFDS dataset reads like a JSONL file of the same fields:
text is `str`, `ClassLabel` ids are their names (also inside sequences,
e.g. CoNLL-2003's `ner` tags), sequences are lists and nested sequences of
features (SQuAD's `answers`) are dicts of lists.

Example:

>>> import tempfile
>>> from tftransfer import configs
>>> from tftransfer.data import tfds_dataset, tfds_records
>>> data_dir = tempfile.mkdtemp()
>>> spec = configs.InputConfig(path="data/goemotions_sentiment/dev.csv", max_examples=2)
>>> _ = tfds_dataset.store_as_tfds({"train": spec}, name="two_comments", data_dir=data_dir)
Downloading and preparing dataset ...
Dataset two_comments downloaded and prepared to ...
>>> spec = configs.InputConfig(path="tfds:two_comments", tfds_data_dir=data_dir)
>>> [(where, record["label"]) for where, record in tfds_records.records(spec)][0][0]
'tfds:two_comments[train] example 0'
>>> sorted(record["label"] for _, record in tfds_records.records(spec))  # ids as names
['negative', 'positive']
"""

import numpy as np
from absl import logging

from tftransfer.data.data_error import DataError


def records(spec):
    """Yields `(where, record)` for each example of `spec.split` of `spec.path`.

    Args:
        spec: a `configs.InputConfig` whose path is `tfds:<name>[/<config>]`
            (or whose format is `tfds`).

    Raises:
        DataError: the dataset is unknown or the split is not prepared (the
            message names the dataset, the split and the data folder).
    """
    import tensorflow_datasets as tfds

    name = spec.path[len("tfds:") :] if spec.path.startswith("tfds:") else spec.path
    try:
        builder = tfds.builder(name, data_dir=spec.tfds_data_dir or None)
    except Exception as e:  # noqa: BLE001 - TFDS raises several kinds for an unknown name
        raise DataError(f"tfds:{name}: not a TensorFlow Datasets dataset ({e})") from e
    if not builder.is_prepared():
        _prepare(builder, name)
    try:
        dataset = builder.as_dataset(split=spec.split)
    except (AssertionError, ValueError) as e:
        raise DataError(
            f"tfds:{name}: no split `{spec.split}` in `{builder.data_dir}` ({e}); the "
            f"dataset has: {', '.join(builder.info.splits) or 'no splits'}"
        ) from e
    features = builder.info.features
    for i, record in enumerate(tfds.as_numpy(dataset)):
        yield f"tfds:{name}[{spec.split}] example {i}", _decode(record, features)


def _prepare(builder, name):
    # What `tfds.load` does on first use: download and prepare once, then
    # read the prepared copy in every later run.
    logging.info(f"tfds:{name}: downloading and preparing into {builder.data_dir}")
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - network, checksum and manual-download errors
        raise DataError(
            f"tfds:{name}: could not download and prepare the dataset ({type(e).__name__}: "
            f"{str(e)[:300]}); with a network run `tfds build {name}` once, or point "
            "the split's path at a local copy (configs/local/ has overlays for ours)"
        ) from e


def _decode(value, feature):
    """`value` (as `tfds.as_numpy` gives it) as plain Python, labels as names."""
    import tensorflow_datasets as tfds

    if isinstance(value, dict):
        inner = getattr(feature, "feature", feature)  # a Sequence of a FeaturesDict
        return {key: _decode(v, _child(inner, key)) for key, v in value.items()}
    if isinstance(feature, tfds.features.Sequence):
        return [_decode(v, feature.feature) for v in value]
    if isinstance(value, np.ndarray) and value.ndim:
        return [_decode(v, feature) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(feature, tfds.features.ClassLabel):
        return feature.int2str(int(value))
    if isinstance(value, (np.bool_, bool)):
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


def _child(feature, key):
    try:
        return feature[key]
    except (KeyError, TypeError):
        return None
