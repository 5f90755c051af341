"""Converts TREC question classification files to TSV (`label<TAB>question`).

CogComp's files hold one question per line as `COARSE:fine question ...`;
the train file is ISO-8859-1 (one non-ASCII byte), the test file ASCII.
TREC-6 uses the coarse label (ABBR, DESC, ENTY, HUM, LOC, NUM); `--fine`
keeps `COARSE:fine` (TREC-50). TREC has no validation split: the configs
score `tftransfer compare` on the 500 test questions.

Usage:
    python tools/prepare_trec.py --input_dir=../shared/data/trec --output_dir=runs/data/trec
"""

import csv
import os

from absl import app, flags

flags.DEFINE_string("input_dir", "../shared/data/trec", "Folder with the CogComp files.")
flags.DEFINE_string("output_dir", "runs/data/trec", "Where train.tsv and test.tsv go.")
flags.DEFINE_bool("fine", False, "Keep the 50 fine labels instead of the 6 coarse ones.")
FLAGS = flags.FLAGS

FILES = {"train": "train_5500.label", "test": "TREC_10.label"}


def parse(line, where, fine=False):
    """`COARSE:fine text` -> `(label, text)`; a malformed line is an error naming it."""
    label, sep, text = line.rstrip("\n").partition(" ")
    if not sep or ":" not in label or not text.strip():
        raise ValueError(f"{where}: expected `COARSE:fine question`, got {line!r}")
    return (label if fine else label.split(":", 1)[0]), text.strip()


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for split, name in FILES.items():
        source = os.path.join(FLAGS.input_dir, name)
        with open(source, encoding="latin-1") as f:
            rows = [parse(line, f"{source}:{i}", FLAGS.fine) for i, line in enumerate(f, 1)]
        target = os.path.join(FLAGS.output_dir, f"{split}.tsv")
        with open(target, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writerow(["label", "question"])
            writer.writerows(rows)
        print(f"{target}: {len(rows)} questions, {len({r[0] for r in rows})} labels")


if __name__ == "__main__":
    app.run(main)
