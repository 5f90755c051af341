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
            maximises macro-F1 on `gold`, a sum of independent terms);
            `global`, one threshold for all labels that maximises macro-F1;
            or `shrunk`, per-label thresholds pulled towards the global one
            by as much as cross-validation on `gold` says transfers best
            (`shrunk_thresholds`).

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
    if mode == "shrunk":
        return shrunk_thresholds(gold, probabilities)
    if mode != "per_label":
        raise ValueError(f"mode must be `per_label`, `global` or `shrunk`, got {mode!r}")
    best = order[np.argmax(f1[order], axis=0)]
    return GRID[best]


#: shrinkage strengths tried, in validation positives (0 = per label, inf = global).
STRENGTHS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, np.inf)


def _shrink(own, common, positives, strength):
    positives = np.asarray(positives, dtype=np.float64)
    if not np.isfinite(strength):
        weight = np.zeros_like(positives)
    else:  # a label without positives has no threshold of its own to keep
        weight = np.divide(
            positives, positives + strength, out=np.zeros_like(positives), where=positives > 0
        )
    return np.round(weight * own + (1 - weight) * common, 2)


def shrunk_thresholds(gold, probabilities, repeats=5, seed=0):
    """Per-label thresholds pulled towards the global one, more so for rare labels.

    A label with few validation positives gets an F1-best threshold that
    fits those few (GoEmotions' `grief`, 13 dev positives: 0.01, which then
    predicts grief for most test comments). Each label's threshold is
    `w * own + (1 - w) * global` with `w = positives / (positives + k)`;
    `k` is chosen on the validation data itself by repeated 2-fold
    cross-validation (tune on one half, score macro-F1 on the other), so a
    label set whose rare labels do transfer keeps its own thresholds (k = 0)
    and one whose do not moves towards the global threshold.

    Written here because scikit-learn's threshold tuning covers one binary
    target, not shrinkage across the labels of a multi-label model.

    Args:
        gold: `[examples, labels]` 0/1 gold labels.
        probabilities: `[examples, labels]` predicted probabilities.
        repeats: random 2-fold splits averaged when choosing `k`.
        seed: the splits' seed (the result is deterministic).

    Returns:
        `[labels]` thresholds, rounded to the 0.01 grid.
    """
    gold = np.asarray(gold)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    rng = np.random.default_rng(seed)
    scores = np.zeros(len(STRENGTHS))
    for _ in range(repeats):
        half = rng.permutation(len(gold)) < len(gold) // 2
        for tune, score in ((half, ~half), (~half, half)):
            own = tune_thresholds(gold[tune], probabilities[tune])
            common = tune_thresholds(gold[tune], probabilities[tune], "global")
            positives = gold[tune].sum(axis=0)
            for i, strength in enumerate(STRENGTHS):
                thresholds = _shrink(own, common, positives, strength)
                predicted = probabilities[score] >= thresholds[None, :]
                scores[i] += skm.f1_score(gold[score], predicted, average="macro", zero_division=0)
    # Ties go to the weaker shrinkage (the plain per-label thresholds first).
    strength = STRENGTHS[int(np.argmax(scores))]
    own = tune_thresholds(gold, probabilities)
    common = tune_thresholds(gold, probabilities, "global")
    return _shrink(own, common, gold.sum(axis=0), strength)
