"""Builds a long-document classification set: SQuAD paragraphs labelled by article.

Each SQuAD v1.1 (Rajpurkar et al., EMNLP 2016; CC BY-SA 4.0) paragraph is a
Wikipedia passage of about 150 tokens (up to about 800); its label is the
title of its article (48 in the dev file). At `max_seq_length: 64` most of a
paragraph lies beyond the first window, which is what the long-text
benchmark needs: windows against truncation at the same length.

Paragraphs of every article are split by position: every fifth from the
fourth is dev, every fifth from the fifth is test, the rest train, so each
split has every article.

Output: `train.jsonl`, `dev.jsonl`, `test.jsonl` with `{"text", "label"}`.

Usage:
    python tools/make_squad_titles.py --squad=../shared/data/squad_v1.1/dev-v1.1.json \
        --output_dir=runs/squad_titles
"""

import json
import os

from absl import app, flags

flags.DEFINE_string(
    "squad", "../shared/data/squad_v1.1/dev-v1.1.json", "A SQuAD v1.1/v2.0 JSON file."
)
flags.DEFINE_string("output_dir", "runs/squad_titles", "Where to write the JSONL files.")
FLAGS = flags.FLAGS


def split_of(index):
    return {3: "dev", 4: "test"}.get(index % 5, "train")


def main(argv):
    del argv
    with open(FLAGS.squad, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    rows = {"train": [], "dev": [], "test": []}
    for article in articles:
        for i, paragraph in enumerate(article["paragraphs"]):
            rows[split_of(i)].append({"text": paragraph["context"], "label": article["title"]})
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for split, records in rows.items():
        with open(os.path.join(FLAGS.output_dir, f"{split}.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        print(f"{split}.jsonl: {len(records)} paragraphs of {len(articles)} articles")


if __name__ == "__main__":
    app.run(main)
