"""TensorFlow Datasets catalogue sets with examples a test chooses, offline.

`tfds.testing.mock_data` keeps each dataset's real feature spec (from TFDS's
code: names, `ClassLabel` names, nesting) and serves the given examples,
encoded and decoded by those features as a prepared dataset would be.
"""

import contextlib
import functools

import tensorflow as tf
import tensorflow_datasets as tfds


@contextlib.contextmanager
def fake_tfds(examples):
    """Serves `examples`, `{(name, split): [feature dicts]}`, as those TFDS splits.

    `name` is the dataset as a config names it (`glue/sst2`, `trec`).
    """

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del decoders, read_config, kwargs
        name = self.info.full_name.rsplit("/", 1)[0]
        name = name if any(key[0] == name for key in examples) else self.name
        named = [e for part in str(split).split("+") for e in examples[(name, part)]]
        features = self.info.features
        rows = [tf.data.Dataset.from_tensors(features.encode_example(e)) for e in named]
        dataset = functools.reduce(lambda a, b: a.concatenate(b), rows)
        return dataset.map(features.decode_example)

    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset):
        yield
