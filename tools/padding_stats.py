"""How much of each training batch is padding, for a data file and a backbone.

Simulates the training pipeline's batches (random order, fixed batch size,
padding trimmed to the longest example rounded up to a multiple) and reports
real vs computed tokens, so padding costs can be measured before training.

Usage:
    python tools/padding_stats.py --input=../shared/data/sst2/train.tsv \
        --text_column=sentence --quoting=none
"""

import collections

import numpy as np
from absl import app, flags

from tftransfer import backbones, configs
from tftransfer.data import readers

flags.DEFINE_string("input", None, "Data file (CSV/TSV/JSONL).", required=True)
flags.DEFINE_string("text_column", "text", "Text column.")
flags.DEFINE_enum("quoting", "minimal", ["minimal", "none"], "CSV quoting.")
flags.DEFINE_string("backbone", "default", "Backbone spec (for its tokenizer).")
flags.DEFINE_integer("max_seq_length", 64, "Sequence length cap, special tokens included.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("multiple", 16, "Pad each batch to its longest, rounded up to this.")
flags.DEFINE_integer("seed", 0, "Shuffle seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    spec = configs.InputConfig(
        path=FLAGS.input, text_column=FLAGS.text_column, quoting=FLAGS.quoting
    )
    examples = readers.read(spec, need_labels=False)
    _, tokenizer = backbones.load(FLAGS.backbone, random_init=True)
    lengths = []
    for start in range(0, len(examples), 4096):
        ids = tokenizer(examples.texts[start : start + 4096])
        lengths += [min(len(row) + 2, FLAGS.max_seq_length) for row in ids]
    lengths = np.array(lengths)
    order = np.random.default_rng(FLAGS.seed).permutation(len(lengths))
    batches = len(order) // FLAGS.batch_size
    padded = collections.Counter()
    real = computed = 0
    for b in range(batches):
        batch = lengths[order[b * FLAGS.batch_size : (b + 1) * FLAGS.batch_size]]
        width = -(-batch.max() // FLAGS.multiple) * FLAGS.multiple
        width = min(width, FLAGS.max_seq_length)
        padded[int(width)] += 1
        real += batch.sum()
        computed += width * len(batch)
    print(
        f"{len(lengths)} examples; tokens incl. [CLS]/[SEP]: mean {lengths.mean():.1f}, "
        f"median {np.median(lengths):.0f}, p95 {np.percentile(lengths, 95):.0f}"
    )
    print(
        f"batch widths ({batches} batches of {FLAGS.batch_size}): "
        + ", ".join(f"{w}: {100 * n / batches:.1f}%" for w, n in sorted(padded.items()))
    )
    print(f"padding: {100 * (1 - real / computed):.1f}% of computed tokens")


if __name__ == "__main__":
    app.run(main)
