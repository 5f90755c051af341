"""Entity-level NER metrics with seqeval, and conlleval-ready prediction files.

Default mode reads spans as conlleval does (an `I-X` after `O` or another type
starts an entity); `strict=True` scores IOB2 spans exactly (seqeval's strict
mode), where such an `I-X` is not an entity.

Example:

>>> from tftransfer.metrics import entity
>>> entity.report([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
1.0
"""

import tensorflow as tf
from seqeval import metrics as seqeval_metrics
from seqeval.scheme import IOB2


def report(gold, predicted, strict=False):
    """Precision, recall and F1 overall and per entity type.

    Args:
        gold: IOB2 tag sequences, one per sentence.
        predicted: predicted tag sequences, same lengths.
        strict: score exact IOB2 spans instead of conlleval's reading.

    Returns:
        A JSON-ready dict: `precision`, `recall`, `f1`, `per_type`
        ({type: {precision, recall, f1, support}}), `sentences`, `mode`.
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences must have the same shapes")
    kwargs = {"mode": "strict", "scheme": IOB2} if strict else {}
    per_type = seqeval_metrics.classification_report(
        gold, predicted, output_dict=True, zero_division=0, **kwargs
    )
    types = {
        name: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for name, v in per_type.items()
        if not name.endswith(" avg")
    }

    def score(fn):
        return float(fn(gold, predicted, zero_division=0, **kwargs))

    return {
        "sentences": len(gold),
        "mode": "strict IOB2" if strict else "conlleval",
        "precision": score(seqeval_metrics.precision_score),
        "recall": score(seqeval_metrics.recall_score),
        "f1": score(seqeval_metrics.f1_score),
        "per_type": types,
    }


def write_conll(path, tokens, gold, predicted):
    """Writes `token gold predicted` lines, a blank line between sentences.

    The file is what the Perl conlleval script reads (`conlleval < path`).
    """
    with tf.io.gfile.GFile(path, "w") as f:
        for words, gold_tags, predicted_tags in zip(tokens, gold, predicted):
            for word, g, p in zip(words, gold_tags, predicted_tags):
                f.write(f"{word} {g} {p}\n")
            f.write("\n")
