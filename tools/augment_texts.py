"""Perturbed copies of training texts, for a distillation teacher to label (`data.unlabeled`).

A small student learns more from a teacher when it sees the teacher's
answers on more texts than the labelled ones. Tang et al. (2019, "Distilling
task-specific knowledge from BERT into simple neural networks") made them by
perturbing the training texts; this tool does two of their three
perturbations (the third, replacing a word by another of its part of speech,
needs a tagger): each word becomes `[MASK]` with probability `--mask_prob`,
then with probability `--ngram_prob` the copy is cut to a random n-gram of
1 to `--max_ngram` words. Copies equal to their original or to an earlier
copy are dropped. Writes JSONL (`{"text": ...}`), one copy per line.

    python tools/augment_texts.py --input=$DATA/sst2/train.tsv --text_column=sentence \
      --quoting=none --copies=1 --output=runs/data/sst2_augmented.jsonl
"""

import json
import os
import random

from absl import app, flags


def define_flags():
    """The command's flags; defined when run, so that importing `augment` defines none."""
    flags.DEFINE_string("input", "", "Texts: a CSV/TSV/JSONL file any tftransfer reader takes.")
    flags.DEFINE_string("text_column", "text", "The text column of --input.")
    flags.DEFINE_string("format", "", "Format of --input (empty: from its name).")
    flags.DEFINE_enum("quoting", "minimal", ["minimal", "none"], "CSV quoting of --input.")
    flags.DEFINE_string("output", "", "The JSONL file to write.")
    flags.DEFINE_integer("copies", 1, "Perturbed copies tried per text.")
    flags.DEFINE_float("mask_prob", 0.1, "Chance that a word becomes --mask_token.")
    flags.DEFINE_float("ngram_prob", 0.25, "Chance that a copy is cut to one n-gram.")
    flags.DEFINE_integer("max_ngram", 5, "Longest n-gram kept.")
    flags.DEFINE_string(
        "mask_token",
        "[MASK]",
        "What a masked word becomes. The teacher reads it as text: a BERT teacher reads "
        "[MASK] as its mask token (as Hugging Face's tokenizers do).",
    )
    flags.DEFINE_integer("seed", 0, "Random seed.")


FLAGS = flags.FLAGS


def perturb(words, rng, mask_prob, ngram_prob, max_ngram, mask_token):
    """One perturbed copy of a text's words (Tang et al., 2019: masking, n-gram sampling)."""
    out = [mask_token if rng.random() < mask_prob else w for w in words]
    if len(out) > 1 and rng.random() < ngram_prob:
        n = rng.randint(1, min(max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start : start + n]
    return out


def augment(texts, copies, seed=0, **settings):
    """The distinct perturbed copies of `texts` that differ from every original."""
    rng = random.Random(seed)
    seen = {" ".join(t.split()) for t in texts}  # originals, whitespace aside
    out = []
    for text in texts:
        words = text.split()
        for _ in range(copies):
            copy = " ".join(perturb(words, rng, **settings))
            if copy and copy not in seen:
                seen.add(copy)
                out.append(copy)
    return out


def main(argv):
    del argv
    if not FLAGS.input or not FLAGS.output:
        raise app.UsageError("give --input and --output")
    from tftransfer.data import readers
    from tftransfer.data.data_config import InputConfig

    spec = InputConfig(
        path=FLAGS.input, format=FLAGS.format, text_column=FLAGS.text_column, quoting=FLAGS.quoting
    )
    texts = readers.read(spec, need_labels=False).texts
    copies = augment(
        texts,
        FLAGS.copies,
        FLAGS.seed,
        mask_prob=FLAGS.mask_prob,
        ngram_prob=FLAGS.ngram_prob,
        max_ngram=FLAGS.max_ngram,
        mask_token=FLAGS.mask_token,
    )
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        for text in copies:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    print(f"wrote {len(copies)} copies of {len(texts)} texts to {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
