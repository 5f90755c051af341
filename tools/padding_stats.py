"""How much of each training batch is padding, through the real input pipeline.

Builds tftransfer's training stream for a text-classification file (the same
tokenization, shuffling and length buckets `train` uses) and counts, over
one epoch of batches, real tokens against computed ones, per bucket width.
Compare bucket settings before training: `--bucket_boundaries=` (empty) pads
every batch to max_seq_length; `--packing` packs each batch's examples into
shared rows of max_seq_length (`data.packing`).

Usage:
    python tools/padding_stats.py --input=$DATA/sst2/train.tsv \
        --text_column=sentence --label_column=label --quoting=none
"""

import collections

import numpy as np
from absl import app, flags

from tftransfer import configs, experiment, run_setup
from tftransfer.data import packing, pipeline

flags.DEFINE_string("input", None, "Data file (CSV/TSV/JSONL).", required=True)
flags.DEFINE_string("text_column", "text", "Text column.")
flags.DEFINE_string("label_column", "label", "Label column.")
flags.DEFINE_enum("quoting", "minimal", ["minimal", "none"], "CSV quoting.")
flags.DEFINE_string("backbone", "default", "Backbone spec (for its tokenizer).")
flags.DEFINE_integer("max_seq_length", 64, "Sequence length cap, special tokens included.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_list(
    "bucket_boundaries",
    [str(b) for b in configs.DataConfig().bucket_boundaries],
    "Bucket lengths (empty: pad every batch to max_seq_length).",
)
flags.DEFINE_bool("packing", False, "Pack each batch into shared rows (data.packing).")
flags.DEFINE_bool("xla", False, "Packed row counts rounded for XLA, as when training with XLA.")
flags.DEFINE_integer("seed", 42, "Shuffle seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    params = configs.load(
        [],
        {
            "backbone": {"spec": FLAGS.backbone, "random_init": True},
            "task": {"text_classification": {"max_seq_length": FLAGS.max_seq_length}},
            "data": {
                "train": {
                    "path": FLAGS.input,
                    "text_column": FLAGS.text_column,
                    "label_column": FLAGS.label_column,
                    "quoting": FLAGS.quoting,
                },
                "bucket_boundaries": [int(b) for b in FLAGS.bucket_boundaries],
                "packing": FLAGS.packing,
            },
        },
    )
    examples = run_setup.read_split(params, "train")
    _, task = experiment.prepare_task(params, examples)
    batches = len(examples) // FLAGS.batch_size
    stream = pipeline.train_dataset(
        task, examples, FLAGS.batch_size, params.data, FLAGS.seed, static_shapes=FLAGS.xla
    )
    widths = collections.Counter()
    lengths = []
    real = computed = 0
    for features, _ in stream.take(batches):
        mask = features["padding_mask"].numpy()
        # Packed batches differ by row count, the others by width.
        widths[
            f"{mask.shape[0]} rows of {mask.shape[1]}" if FLAGS.packing else f"{mask.shape[1]}"
        ] += 1
        lengths += packing.example_lengths(features).tolist()
        real += mask.sum()
        computed += mask.size
    lengths = np.array(lengths)
    print(
        f"{len(examples)} examples; tokens incl. [CLS]/[SEP]: mean {lengths.mean():.1f}, "
        f"median {np.median(lengths):.0f}, p95 {np.percentile(lengths, 95):.0f}"
    )
    print(
        f"batch shapes ({batches} batches of {FLAGS.batch_size}): "
        + ", ".join(
            f"{w}: {100 * n / batches:.1f}%"
            for w, n in sorted(widths.items(), key=lambda item: int(item[0].split()[0]))
        )
    )
    print(f"padding: {100 * (1 - real / computed):.1f}% of computed tokens")


if __name__ == "__main__":
    app.run(main)
