"""Builds the bundled GoEmotions sentiment sample from the original TSVs.

GoEmotions (Demszky et al., ACL 2020; CC BY 4.0) labels Reddit comments with
27 emotions + neutral. Upstream's `sentiment_dict.json` groups the emotions
into positive, negative and ambiguous; a comment becomes `positive` or
`negative` when all of its emotions fall in that group (neutral, ambiguous and
mixed comments are left out). The sample is class-balanced and deterministic.

Usage:
    python tools/make_goemotions_sample.py --goemotions_dir=$DATA/goemotions
"""

import csv
import json
import os
import random

from absl import app, flags

flags.DEFINE_string(
    "goemotions_dir",
    "../shared/data/goemotions",
    "Folder with train.tsv, dev.tsv, emotions.txt, sentiment_dict.json.",
)
flags.DEFINE_string("output_dir", "data/goemotions_sentiment", "Where to write the CSVs.")
flags.DEFINE_integer("train_per_class", 1500, "Training examples per class.")
flags.DEFINE_integer("dev_per_class", 300, "Validation examples per class.")
flags.DEFINE_integer("seed", 13, "Sampling seed.")
FLAGS = flags.FLAGS


def sentiment_examples(path, emotions, polarity):
    out = {"positive": [], "negative": []}
    with open(path, encoding="utf-8", newline="") as f:
        for text, ids, comment_id in csv.reader(f, delimiter="\t"):
            groups = {polarity.get(emotions[int(i)], "other") for i in ids.split(",")}
            if len(groups) == 1 and next(iter(groups)) in out:
                out[next(iter(groups))].append((text.strip(), comment_id))
    return out


def write(path, by_label, per_class, rng):
    rows = []
    for label in sorted(by_label):
        rows += [(text, label, cid) for text, cid in rng.sample(by_label[label], per_class)]
    rng.shuffle(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "comment_id"])
        writer.writerows(rows)


def main(argv):
    del argv
    src = FLAGS.goemotions_dir
    with open(os.path.join(src, "emotions.txt"), encoding="utf-8") as f:
        emotions = f.read().split("\n")
    with open(os.path.join(src, "sentiment_dict.json"), encoding="utf-8") as f:
        groups = json.load(f)
    polarity = {e: g for g, members in groups.items() for e in members}
    rng = random.Random(FLAGS.seed)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for split, per_class in (("train", FLAGS.train_per_class), ("dev", FLAGS.dev_per_class)):
        by_label = sentiment_examples(os.path.join(src, f"{split}.tsv"), emotions, polarity)
        write(os.path.join(FLAGS.output_dir, f"{split}.csv"), by_label, per_class, rng)
        print(split, {k: len(v) for k, v in by_label.items()})


if __name__ == "__main__":
    app.run(main)
