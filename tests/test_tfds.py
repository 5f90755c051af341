import pytest

from tftransfer import configs, experiment
from tftransfer.data import readers, tfds_dataset


@pytest.mark.slow
def test_local_files_become_a_tfds_dataset(tmp_path, sentiment_tsv, tiny_preset):
    data_dir = str(tmp_path / "tfds")
    spec = configs.InputConfig(path=sentiment_tsv, text_column="sentence")
    tfds_dataset.store_as_tfds({"train": spec, "validation": spec}, "tiny_sentiment", data_dir)

    read = readers.read(
        configs.InputConfig(path="tfds:tiny_sentiment", split="validation", tfds_data_dir=data_dir)
    )
    original = readers.read(spec)
    assert read.texts == original.texts
    assert read.labels == original.labels  # ClassLabel ids map back to names

    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "data": {
                "train": {"path": "tfds:tiny_sentiment", "tfds_data_dir": data_dir},
                "validation": {
                    "path": "tfds:tiny_sentiment",
                    "split": "validation",
                    "tfds_data_dir": data_dir,
                },
            },
            "trainer": {"batch_size": 8, "epochs": 1},
        },
    )
    metrics = experiment.train(params, str(tmp_path / "run"))
    assert metrics["examples"] == len(original)


def test_missing_tfds_split(tmp_path, sentiment_tsv):
    data_dir = str(tmp_path / "tfds")
    spec = configs.InputConfig(path=sentiment_tsv, text_column="sentence")
    tfds_dataset.store_as_tfds({"train": spec}, "only_train", data_dir)
    with pytest.raises(readers.DataError, match="split `test`"):
        readers.read(
            configs.InputConfig(path="tfds:only_train", split="test", tfds_data_dir=data_dir)
        )
