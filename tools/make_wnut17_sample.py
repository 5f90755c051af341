"""Builds the bundled WNUT-17 sample from the upstream CoNLL files.

WNUT-17 (Derczynski et al., W-NUT 2017; CC BY 4.0) tags emerging and rare
entities in user-generated text with 6 types in IOB2. The sample keeps whole
sentences, drawn at random with a fixed seed, and writes them in the upstream
format (`token<TAB>tag`, a blank line after each sentence). Sentences are read
with tftransfer's own CoNLL reader, so the sample parses exactly as the
originals do (including upstream's TAB-only separator lines).

Usage:
    python tools/make_wnut17_sample.py --wnut17_dir=$DATA/wnut17
"""

import os
import random

from absl import app, flags

from tftransfer.data import tagged_readers

flags.DEFINE_string(
    "wnut17_dir",
    "../shared/data/wnut17",
    "Folder with wnut17train.conll and emerging.dev.conll.",
)
flags.DEFINE_string("output_dir", "data/wnut17_sample", "Where to write the sample.")
flags.DEFINE_integer("train_sentences", 1000, "Sentences sampled from upstream train.")
flags.DEFINE_integer("dev_sentences", 300, "Sentences sampled from upstream dev.")
flags.DEFINE_integer("seed", 17, "Sampling seed.")
FLAGS = flags.FLAGS


def write(source, path, count, rng):
    sentences = tagged_readers.read(source, tag_scheme="iob2")
    chosen = sorted(rng.sample(range(len(sentences)), count))
    with open(path, "w", encoding="utf-8") as f:
        for i in chosen:
            for token, tag in zip(sentences.tokens[i], sentences.tags[i]):
                f.write(f"{token}\t{tag}\n")
            f.write("\n")
    return len(chosen)


def main(argv):
    del argv
    rng = random.Random(FLAGS.seed)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for name, source, count in (
        ("train.conll", "wnut17train.conll", FLAGS.train_sentences),
        ("dev.conll", "emerging.dev.conll", FLAGS.dev_sentences),
    ):
        n = write(
            os.path.join(FLAGS.wnut17_dir, source),
            os.path.join(FLAGS.output_dir, name),
            count,
            rng,
        )
        print(f"{name}: {n} sentences from {source}")


if __name__ == "__main__":
    app.run(main)
