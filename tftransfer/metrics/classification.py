"""Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

Uses scikit-learn's implementations so the numbers match what users compute
elsewhere.

Example:

>>> from tftransfer.metrics import classification
>>> round(classification.report([0, 1, 1], [0, 1, 0], ["neg", "pos"])["accuracy"], 3)
0.667
"""

import numpy as np
from sklearn import metrics as skm


def report(labels, predictions, names):
    """Returns a JSON-ready dict of classification metrics.

    Args:
        labels: gold label ids.
        predictions: predicted label ids.
        names: label names in id order.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    ids = list(range(len(names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=ids, zero_division=0
    )
    return {
        "examples": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "labels": list(names),
        "confusion_matrix": skm.confusion_matrix(labels, predictions, labels=ids).tolist(),
    }
