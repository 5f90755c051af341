"""Splits a SQuAD JSON file into train and evaluation files by article.

SQuAD v1.1 train is not available offline here, so benchmarks carve a train
set out of dev. Splitting by article keeps every paragraph (and the many
questions on it) on one side, so no context is seen in both. The split is
deterministic: article `i` (in file order) goes to evaluation when
`i % every == offset`, else to train; the titles of each side are printed.

Usage:
    python tools/split_squad_by_article.py --input=$DATA/squad_v1.1/dev-v1.1.json \
        --train_output=runs/squad_split/train.json --eval_output=runs/squad_split/eval.json
"""

import json
import os

from absl import app, flags

from tftransfer.data.squad_readers import split_by_article

flags.DEFINE_string("input", "../shared/data/squad_v1.1/dev-v1.1.json", "SQuAD JSON file.")
flags.DEFINE_string("train_output", "runs/squad_split/train.json", "Train articles go here.")
flags.DEFINE_string("eval_output", "runs/squad_split/eval.json", "Evaluation articles go here.")
flags.DEFINE_integer("every", 4, "One article in `every` goes to evaluation.")
flags.DEFINE_integer("offset", 3, "Which one (0 <= offset < every).")
FLAGS = flags.FLAGS


def _count(document):
    return sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])


def main(argv):
    del argv
    with open(FLAGS.input, encoding="utf-8") as f:
        document = json.load(f)
    for path, part in zip(
        (FLAGS.train_output, FLAGS.eval_output),
        split_by_article(document, FLAGS.every, FLAGS.offset),
    ):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(part, f, ensure_ascii=False)
        titles = [a["title"] for a in part["data"]]
        print(f"{path}: {len(titles)} articles, {_count(part)} questions: {', '.join(titles)}")


if __name__ == "__main__":
    app.run(main)
