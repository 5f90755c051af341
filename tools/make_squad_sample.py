"""Builds the bundled SQuAD v1.1 sample from the official dev file.

SQuAD v1.1 (Rajpurkar et al., EMNLP 2016; CC BY-SA 4.0) is the only SQuAD
file our machines hold, so the sample is cut from dev with the same article
split as the benchmark (`tools/split_squad_by_article.py`): train paragraphs
come from train articles and dev paragraphs from evaluation articles, so no
context is on both sides. Whole paragraphs (with all their questions) are
drawn at random with a fixed seed until the question budget is reached, and
written in the official JSON layout, grouped under their article titles.

Usage:
    python tools/make_squad_sample.py --input=$DATA/squad_v1.1/dev-v1.1.json
"""

import json
import os
import random

from absl import app, flags

from tftransfer.data.squad_readers import split_by_article

flags.DEFINE_string("input", "../shared/data/squad_v1.1/dev-v1.1.json", "SQuAD JSON file.")
flags.DEFINE_string("output_dir", "data/squad_sample", "Where to write the sample.")
flags.DEFINE_integer("train_questions", 1000, "Questions (about) in train.json.")
flags.DEFINE_integer("dev_questions", 300, "Questions (about) in dev.json.")
flags.DEFINE_integer("seed", 11, "Sampling seed.")
FLAGS = flags.FLAGS


def sample(document, questions, rng):
    """Returns a SQuAD document of random whole paragraphs, about `questions` questions."""
    paragraphs = [(i, p) for i, a in enumerate(document["data"]) for p in a["paragraphs"]]
    rng.shuffle(paragraphs)
    chosen, count = [], 0
    for i, paragraph in paragraphs:
        if count >= questions:
            break
        chosen.append((i, paragraph))
        count += len(paragraph["qas"])
    articles = {}
    # Back in file order, so the sample reads like the original.
    for i, paragraph in sorted(chosen, key=lambda c: c[0]):
        title = document["data"][i]["title"]
        articles.setdefault(i, {"title": title, "paragraphs": []})["paragraphs"].append(paragraph)
    data = [articles[i] for i in sorted(articles)]
    return {"version": document.get("version", "1.1"), "data": data}, count


def main(argv):
    del argv
    rng = random.Random(FLAGS.seed)
    with open(FLAGS.input, encoding="utf-8") as f:
        document = json.load(f)
    train, evaluation = split_by_article(document)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for name, part, budget in (
        ("train.json", train, FLAGS.train_questions),
        ("dev.json", evaluation, FLAGS.dev_questions),
    ):
        result, count = sample(part, budget, rng)
        with open(os.path.join(FLAGS.output_dir, name), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=None)
        print(f"{name}: {count} questions from {len(result['data'])} articles")


if __name__ == "__main__":
    app.run(main)
