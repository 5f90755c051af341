"""Multi-label metrics and decision thresholds tuned for F1.

F1 averages (micro, macro, weighted), per-label precision/recall/F1 and the
exact-match ratio come from scikit-learn, so the numbers match what users
compute elsewhere. scikit-learn has no threshold search for multi-label
outputs (`TunedThresholdClassifierCV` wraps an estimator and one binary
target), hence `tune_thresholds`.

Example:

>>> import numpy as np
>>> from tftransfer.metrics import multi_label
>>> gold = np.array([[1, 0], [0, 1], [1, 1]])
>>> probabilities = np.array([[0.9, 0.2], [0.4, 0.3], [0.6, 0.7]])
>>> multi_label.report(gold, probabilities, [0.5, 0.5], ["joy", "anger"])["exact_match"]
0.666667
>>> multi_label.tune_thresholds(gold, probabilities).tolist()
[0.5, 0.3]
"""

import numpy as np
from sklearn import metrics as skm

#: candidate thresholds of the search: 0.01 steps, ends excluded.
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def _r(x):
    return round(float(x), 6)


def report(gold, probabilities, thresholds, names):
    """Returns a JSON-ready dict of multi-label metrics at `thresholds`.

    Args:
        gold: `[examples, labels]` 0/1 gold labels.
        probabilities: `[examples, labels]` predicted probabilities.
        thresholds: one decision threshold per label (a label is predicted
            when its probability is at least its threshold).
        names: label names in id order.
    """
    gold = np.asarray(gold).astype(int)
    predicted = (np.asarray(probabilities) >= np.asarray(thresholds)[None, :]).astype(int)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        gold, predicted, average=None, zero_division=0
    )
    averages = {}
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            gold, predicted, average=average, zero_division=0
        )
        averages.update({f"{average}_precision": _r(p), f"{average}_recall": _r(r)})
        averages[f"{average}_f1"] = _r(f)
    return {
        "examples": int(len(gold)),
        **averages,
        "exact_match": _r(skm.accuracy_score(gold, predicted)),
        "examples_without_labels": int(np.sum(gold.sum(axis=1) == 0)),
        "predicted_without_labels": int(np.sum(predicted.sum(axis=1) == 0)),
        "per_label": {
            name: {
                "precision": _r(precision[i]),
                "recall": _r(recall[i]),
                "f1": _r(f1[i]),
                "support": int(support[i]),
                "threshold": _r(thresholds[i]),
            }
            for i, name in enumerate(names)
        },
        "labels": list(names),
    }


def _f1_per_threshold(gold, probabilities):
    """`[len(GRID), labels]` F1 of each label at each candidate threshold."""
    predicted = probabilities[None, :, :] >= GRID[:, None, None]  # [grid, examples, labels]
    positive = gold.astype(bool)[None]
    tp = np.sum(predicted & positive, axis=1)
    fp = np.sum(predicted & ~positive, axis=1)
    fn = np.sum(~predicted & positive, axis=1)
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def tune_thresholds(gold, probabilities, mode="per_label"):
    """Thresholds that maximise F1 on `gold` (validation data).

    Args:
        gold: `[examples, labels]` 0/1 gold labels.
        probabilities: `[examples, labels]` predicted probabilities.
        mode: `per_label`, each label's own F1-best threshold (this
            maximises macro-F1, which is a sum of independent terms); or
            `global`, one threshold for all labels that maximises macro-F1.

    Returns:
        `[labels]` float thresholds from `GRID`. Ties go to the threshold
        nearest 0.5, so a label whose F1 is flat keeps the usual default.
    """
    gold = np.asarray(gold)
    f1 = _f1_per_threshold(gold, np.asarray(probabilities, dtype=np.float64))
    # Prefer thresholds near 0.5 among equals: order the grid by distance to it.
    order = np.argsort(np.abs(GRID - 0.5), kind="stable")
    if mode == "global":
        best = order[np.argmax(f1.mean(axis=1)[order])]
        return np.full(gold.shape[1], GRID[best])
    if mode != "per_label":
        raise ValueError(f"mode must be `per_label` or `global`, got {mode!r}")
    best = order[np.argmax(f1[order], axis=0)]
    return GRID[best]
