"""Builds the bundled Tiny Shakespeare sample and the full train/valid split.

Tiny Shakespeare (karpathy/char-rnn; the text is in the public domain) has
no official split; the usual one (nanoGPT) holds out the last 10%. Here the
cut is by lines: the first 90% of the 40,000 lines are train, the rest valid.

The bundled sample (`data/tiny_shakespeare_sample/`) keeps whole speeches:
the first `--sample_train_lines` lines of train and the first
`--sample_valid_lines` lines of valid, each cut at the next blank line.

Usage:
    python tools/make_shakespeare_sample.py --input=../shared/data/tiny_shakespeare/input.txt
    python tools/make_shakespeare_sample.py --full_dir=runs/data/shakespeare  # 90/10 split
"""

import os

from absl import app, flags

flags.DEFINE_string("input", "../shared/data/tiny_shakespeare/input.txt", "input.txt.")
flags.DEFINE_string("output_dir", "data/tiny_shakespeare_sample", "Where the sample goes.")
flags.DEFINE_string("full_dir", "", "Also write the full 90/10 split (train.txt, valid.txt) here.")
flags.DEFINE_integer("sample_train_lines", 1500, "Lines of train in the sample (about).")
flags.DEFINE_integer("sample_valid_lines", 300, "Lines of valid in the sample (about).")
FLAGS = flags.FLAGS


def split(lines, held_out=0.1):
    """First 90% of lines (train), last 10% (valid)."""
    cut = int(round(len(lines) * (1 - held_out)))
    return lines[:cut], lines[cut:]


def whole_speeches(lines, count):
    """The first `count` lines, extended to the end of the speech."""
    end = min(count, len(lines))
    while end < len(lines) and lines[end - 1].strip():
        end += 1
    return lines[:end]


def write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    print(f"{path}: {len(lines)} lines")


def main(argv):
    del argv
    with open(FLAGS.input, encoding="utf-8") as f:
        lines = f.readlines()
    train, valid = split(lines)
    write(
        os.path.join(FLAGS.output_dir, "train.txt"),
        whole_speeches(train, FLAGS.sample_train_lines),
    )
    write(
        os.path.join(FLAGS.output_dir, "valid.txt"),
        whole_speeches(valid, FLAGS.sample_valid_lines),
    )
    if FLAGS.full_dir:
        write(os.path.join(FLAGS.full_dir, "train.txt"), train)
        write(os.path.join(FLAGS.full_dir, "valid.txt"), valid)


if __name__ == "__main__":
    app.run(main)
