"""Turn local files into a TensorFlow Datasets dataset that configs can name.

After `store_as_tfds(...)`, any config can read the data with
`path: tfds:<name>` and `tfds_data_dir: <data_dir>`, with TFDS's versioning,
split metadata and `ClassLabel` names, like any catalogue dataset.

Example:

>>> import tempfile
>>> from tftransfer import configs
>>> from tftransfer.data import readers, tfds_dataset
>>> data = "data/goemotions_sentiment/"
>>> splits = {"train": configs.InputConfig(path=data + "train.csv", max_examples=8),
...           "validation": configs.InputConfig(path=data + "dev.csv", max_examples=4)}
>>> data_dir = tempfile.mkdtemp()
>>> _ = tfds_dataset.store_as_tfds(splits, name="my_sentiment", data_dir=data_dir)
Downloading and preparing dataset ...
Dataset my_sentiment downloaded and prepared to ...
>>> spec = configs.InputConfig(path="tfds:my_sentiment", split="validation", tfds_data_dir=data_dir)
>>> len(readers.read(spec))
4
"""

import tensorflow_datasets as tfds

from tftransfer.data import readers


def store_as_tfds(specs, name, data_dir, version="1.0.0", labels=None, description=""):
    """Reads each split with the project's readers and stores them with TFDS.

    Args:
        specs: `{split name: configs.InputConfig}`.
        name: the TFDS dataset name.
        data_dir: the TFDS data folder.
        version: dataset version.
        labels: label names in id order; default = sorted labels of all splits.
        description: free text stored in the dataset info.

    Returns:
        The prepared TFDS builder.
    """
    examples = {split: readers.read(spec) for split, spec in specs.items()}
    pair = any(e.text_pairs is not None for e in examples.values())
    if labels is None:
        labels = sorted({label for e in examples.values() for label in e.labels})
    index = {label: i for i, label in enumerate(labels)}
    features = {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=labels)}
    if pair:
        features["text_pair"] = tfds.features.Text()
    split_data = {}
    for split, ex in examples.items():
        rows = []
        for i, (text, label, where) in enumerate(zip(ex.texts, ex.labels, ex.sources)):
            if label not in index:
                raise readers.DataError(f"{where}: label `{label}` is not in {labels}")
            row = {"text": text, "label": index[label]}
            if pair:
                row["text_pair"] = ex.text_pairs[i]
            rows.append((i, row))  # TFDS wants (key, example) pairs
        split_data[split] = rows
    return tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=version,
        features=tfds.features.FeaturesDict(features),
        split_datasets=split_data,
        data_dir=data_dir,
        description=description or f"Stored by tftransfer from {sorted(specs)}",
        disable_shuffling=True,
    )
