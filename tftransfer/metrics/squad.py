"""SQuAD exact match and F1, with the official semantics.

Answers are normalised as the official scripts do (lowercase, drop
punctuation and the articles a/an/the, collapse whitespace); a question scores
the best match over its gold answers; a question without a prediction scores 0.
Scoring is tf-models-official's copies of the official scripts, chosen by the
version of the data: v1.1 data by the v1.1 script, which keeps gold answers
that normalise to the empty string (three questions of dev-v1.1 have one), v2.0
data by the v2.0 script, which drops them. The v2.0 script leaves questions
without a prediction out of the average; totals here are over every question
instead, such questions scoring 0 (as in the official v1.1 script).

Example:

>>> from tftransfer.metrics import squad
>>> result = squad.score({"q1": "the Denver Broncos"}, {"q1": ["Denver Broncos"]})
>>> result["exact_match"], result["f1"], result["questions"]
(100.0, 100.0, 1)
"""

import json

import tensorflow as tf
from official.nlp.tools import squad_evaluate_v1_1 as official_v1
from official.nlp.tools import squad_evaluate_v2_0 as official

# Stands for a question without a prediction: the official v2.0 script skips
# such questions, so they get an answer that matches no gold answer (not even
# the empty one of an unanswerable question) and score 0, as in the v1.1 script.
MISSING = "\x00"

_KEYS = {
    "exact": "exact_match",
    "f1": "f1",
    "HasAns_exact": "has_answer_exact_match",
    "HasAns_f1": "has_answer_f1",
    "HasAns_total": "has_answer_questions",
    "NoAns_exact": "no_answer_exact_match",
    "NoAns_f1": "no_answer_f1",
    "NoAns_total": "no_answer_questions",
}
_BEST = {
    "final_exact": "best_exact_match",
    "final_exact_thresh": "best_exact_match_threshold",
    "final_f1": "best_f1",
    "final_f1_thresh": "best_f1_threshold",
}


def score(predictions, gold_answers, no_answer_probability=None, version="auto"):
    """Exact match and F1 (percent) over all questions.

    Args:
        predictions: `{id: answer text}` ("" = no answer).
        gold_answers: `{id: [gold texts]}` (empty list = unanswerable).
        no_answer_probability: optional `{id: p}`; with it, the threshold on
            `p` that maximises F1 (and exact match) is searched, as the
            official v2.0 script does.
        version: the data's SQuAD version, whose official script scores:
            `"1.1"`, `"2.0"`, or `"auto"` (2.0 when a question is unanswerable
            or `no_answer_probability` is given).

    Returns:
        A JSON-ready dict: `exact_match`, `f1`, `questions`, `missing`
        (questions without a prediction), and `has_answer_*`/`no_answer_*`
        splits when there are unanswerable questions; with
        `no_answer_probability`, `best_f1`, `best_f1_threshold`,
        `best_exact_match`, `best_exact_match_threshold`.
    """
    ids = list(gold_answers)
    out = {"exact_match": 0.0, "f1": 0.0, "questions": len(ids)}
    out["missing"] = sum(1 for i in ids if i not in predictions)
    if not ids:
        return out
    dataset = [
        {"paragraphs": [{"qas": [{"id": i, "answers": [{"text": t} for t in gold_answers[i]]}]}]}
        for i in ids
    ]
    filled = {i: predictions.get(i, MISSING) for i in ids}
    if version == "auto":
        unanswerable = any(not gold_answers[i] for i in ids)
        version = "2.0" if unanswerable or no_answer_probability is not None else "1.1"
    if version == "1.1":
        if no_answer_probability is not None:
            raise ValueError("no-answer thresholds are a SQuAD 2.0 notion")
        result = official_v1.evaluate(dataset, filled)
        # Model Garden's copy returns fractions where the official one prints percent.
        out["exact_match"] = 100.0 * result["exact_match"]
        out["f1"] = 100.0 * result["final_f1"]
        return out
    probabilities = None
    if no_answer_probability is not None:
        probabilities = {i: no_answer_probability.get(i, 0.0) for i in ids}
    result = official.evaluate(dataset, filled, probabilities)
    for key, ours in _KEYS.items():
        if key in result:
            out[ours] = result[key]
    if "NoAns_total" not in result:  # splits only when some question is unanswerable
        for key in ("has_answer_exact_match", "has_answer_f1", "has_answer_questions"):
            out.pop(key, None)
    if no_answer_probability is not None:
        out.update({ours: result[key] for key, ours in _BEST.items()})
    return out


def write_predictions(path, predictions):
    """Writes `{id: answer}` JSON, the official scripts' prediction format."""
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(predictions, f, ensure_ascii=False, indent=1)
    return path
