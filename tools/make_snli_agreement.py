"""Builds a sentence-pair regression set from SNLI's five annotator labels.

SNLI 1.0 (Bowman et al., EMNLP 2015; CC BY-SA 4.0) dev and test pairs were
labelled by five annotators each. The share of annotators who chose each
label is a graded target: how clearly the premise entails, is neutral to, or
contradicts the hypothesis. This writes those shares as three regression
targets, so `text_regression` has a public, offline set to train on.

Output TSVs (header, UTF-8): `premise, hypothesis, entailment, neutral,
contradiction, pair_id`; the shares are multiples of 1/n for n annotators.

Usage:
    python tools/make_snli_agreement.py --snli_dir=../shared/data/snli_1.0 \
        --output_dir=runs/snli_agreement                  # everything
    python tools/make_snli_agreement.py --train_examples=2000 --dev_examples=300 \
        --test_examples=500 --output_dir=data/snli_agreement_sample  # the bundled sample
"""

import csv
import json
import os
import random

from absl import app, flags

flags.DEFINE_string("snli_dir", "../shared/data/snli_1.0", "Folder with snli_1.0_{dev,test}.jsonl.")
flags.DEFINE_string("output_dir", "runs/snli_agreement", "Where to write train/dev/test.tsv.")
flags.DEFINE_integer("train_examples", 0, "Sample this many training pairs (0 = all).")
flags.DEFINE_integer("dev_examples", 1000, "Pairs of SNLI dev held out as our dev split.")
flags.DEFINE_integer("test_examples", 0, "Sample this many test pairs (0 = all).")
flags.DEFINE_integer("seed", 5, "Sampling seed.")
FLAGS = flags.FLAGS

LABELS = ("entailment", "neutral", "contradiction")


def read_shares(path):
    """`[(premise, hypothesis, shares..., pair_id)]` of one SNLI JSONL file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            record = json.loads(line)
            votes = record["annotator_labels"]
            unknown = set(votes) - set(LABELS)
            if unknown:
                raise ValueError(f"{path}:{number}: annotator label(s) {sorted(unknown)}")
            shares = [round(votes.count(label) / len(votes), 4) for label in LABELS]
            rows.append((record["sentence1"], record["sentence2"], *shares, record["pairID"]))
    return rows


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["premise", "hypothesis", *LABELS, "pair_id"])
        writer.writerows(rows)


def main(argv):
    del argv
    rng = random.Random(FLAGS.seed)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    # SNLI's train file is not on our machines: SNLI dev gives our train and
    # dev splits (disjoint), SNLI test our test split.
    pool = read_shares(os.path.join(FLAGS.snli_dir, "snli_1.0_dev.jsonl"))
    rng.shuffle(pool)
    dev, train = pool[: FLAGS.dev_examples], pool[FLAGS.dev_examples :]
    test = read_shares(os.path.join(FLAGS.snli_dir, "snli_1.0_test.jsonl"))
    for split, rows, n, source in (
        ("train", train, FLAGS.train_examples, "dev"),
        ("dev", dev, 0, "dev"),
        ("test", test, FLAGS.test_examples, "test"),
    ):
        rows = rng.sample(rows, n) if n else rows
        write(os.path.join(FLAGS.output_dir, f"{split}.tsv"), rows)
        print(f"{split}.tsv: {len(rows)} pairs from snli_1.0_{source}.jsonl")


if __name__ == "__main__":
    app.run(main)
