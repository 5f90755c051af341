"""SQuAD exact match and F1, with the official semantics.

Answers are normalised as the official scripts do (lowercase, drop
punctuation and the articles a/an/the, collapse whitespace); a question scores
the best match over its gold answers; a question without a prediction scores 0.
The scoring functions are tf-models-official's copies of the official v1.1 and
v2.0 scripts. Its v2.0 `evaluate` leaves questions without a prediction out of
the average (as the official v2.0 script does), so totals are computed here
over every question instead.

Example:

```python
from tftransfer.metrics import squad

squad.score({"q1": "the Denver Broncos"}, {"q1": ["Denver Broncos"]})
# {'exact_match': 100.0, 'f1': 100.0, 'questions': 1, ...}
```
"""

import json

from official.nlp.tools import squad_evaluate_v2_0 as official


def _best(metric, prediction, golds):
    # An unanswerable question's only correct answer is the empty string.
    golds = [g for g in golds if official._normalize_answer(g)] or [""]
    return max(metric(gold, prediction) for gold in golds)


def score(predictions, gold_answers, no_answer_probability=None):
    """Exact match and F1 (percent) over all questions.

    Args:
        predictions: `{id: answer text}` ("" = no answer).
        gold_answers: `{id: [gold texts]}` (empty list = unanswerable).
        no_answer_probability: optional `{id: p}`; with it, the threshold on
            `p` that maximises F1 (and exact match) is searched, as the
            official v2.0 script does.

    Returns:
        A JSON-ready dict: `exact_match`, `f1`, `questions`, `missing`
        (questions without a prediction), and `has_answer_*`/`no_answer_*`
        splits when there are unanswerable questions; with
        `no_answer_probability`, `best_f1`, `best_f1_threshold`,
        `best_exact_match`, `best_exact_match_threshold`.
    """
    exact, f1 = {}, {}
    for qid, golds in gold_answers.items():
        if qid in predictions:
            exact[qid] = _best(official._compute_exact, predictions[qid], golds)
            f1[qid] = _best(official._compute_f1, predictions[qid], golds)
        else:
            exact[qid] = f1[qid] = 0.0

    def mean(scores, ids):
        return 100.0 * sum(scores[i] for i in ids) / len(ids) if ids else 0.0

    ids = list(gold_answers)
    out = {
        "exact_match": mean(exact, ids),
        "f1": mean(f1, ids),
        "questions": len(ids),
        "missing": sum(1 for i in ids if i not in predictions),
    }
    has = [i for i in ids if any(official._normalize_answer(g) for g in gold_answers[i])]
    if len(has) < len(ids):
        none = [i for i in ids if i not in set(has)]
        out.update(
            has_answer_exact_match=mean(exact, has),
            has_answer_f1=mean(f1, has),
            has_answer_questions=len(has),
            no_answer_exact_match=mean(exact, none),
            no_answer_f1=mean(f1, none),
            no_answer_questions=len(none),
        )
    if no_answer_probability is not None:
        has_answer = {i: i in set(has) for i in ids}
        filled = {i: predictions.get(i, "") for i in ids}
        probs = {i: no_answer_probability.get(i, 0.0) for i in ids}
        out["best_exact_match"], out["best_exact_match_threshold"] = official._find_best_thresh(
            filled, exact, probs, has_answer
        )
        out["best_f1"], out["best_f1_threshold"] = official._find_best_thresh(
            filled, f1, probs, has_answer
        )
    return out


def write_predictions(path, predictions):
    """Writes `{id: answer}` JSON, the official scripts' prediction format."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(predictions, f, ensure_ascii=False, indent=1)
    return path
