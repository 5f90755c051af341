"""Store CSV/TSV/JSONL files as a TFDS dataset readable as `tfds:<name>`.

Usage:
    python tools/make_tfds_dataset.py --name=my_sentiment --data_dir=/data/tfds \
        --train=data/goemotions_sentiment/train.csv \
        --validation=data/goemotions_sentiment/dev.csv
"""

from absl import app, flags

from tftransfer import configs
from tftransfer.data import tfds_dataset

flags.DEFINE_string("name", None, "TFDS dataset name.", required=True)
flags.DEFINE_string("data_dir", None, "TFDS data folder.", required=True)
flags.DEFINE_string("train", "", "Training file.")
flags.DEFINE_string("validation", "", "Validation file.")
flags.DEFINE_string("test", "", "Test file.")
flags.DEFINE_string("text_column", "text", "Text column.")
flags.DEFINE_string("text_pair_column", "", "Second text column (pair tasks).")
flags.DEFINE_string("label_column", "label", "Label column.")
flags.DEFINE_enum("quoting", "minimal", ["minimal", "none"], "CSV quoting.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    specs = {
        split: configs.InputConfig(
            path=path,
            text_column=FLAGS.text_column,
            text_pair_column=FLAGS.text_pair_column,
            label_column=FLAGS.label_column,
            quoting=FLAGS.quoting,
        )
        for split, path in (
            ("train", FLAGS.train),
            ("validation", FLAGS.validation),
            ("test", FLAGS.test),
        )
        if path
    }
    builder = tfds_dataset.store_as_tfds(specs, FLAGS.name, FLAGS.data_dir)
    print(f"Stored tfds:{FLAGS.name} in {builder.data_dir}: {dict(builder.info.splits)}")


if __name__ == "__main__":
    app.run(main)
