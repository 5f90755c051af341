"""PNG reports: training curves, confusion matrices, per-label F1 (and the metrics JSON).

Example:

>>> import os, tempfile
>>> from tftransfer import plots
>>> path = os.path.join(tempfile.mkdtemp(), "eval_validation.json")
>>> metrics = {"accuracy": 0.75, "confusion_matrix": [[1, 1], [0, 2]], "labels": ["neg", "pos"]}
>>> plots.write_metrics(metrics, path)
>>> sorted(os.listdir(os.path.dirname(path)))
['eval_validation.json', 'eval_validation_confusion_matrix.png']
"""

import io
import os

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tftransfer import fileio  # noqa: E402

# Everything here writes through `tf.io.gfile` (`fileio`), so a model_dir may
# be a `gs://` bucket (TPUs read and write only there) or any TF filesystem.


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG to any TF filesystem and closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def write_metrics(metrics, path):
    """Writes metrics JSON, and next to it the confusion matrix or per-label F1 PNG."""
    fileio.write_json(metrics, path)
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            metrics["labels"],
            os.path.splitext(path)[0] + "_confusion_matrix.png",
        )
    if "per_label" in metrics:
        plot_per_label(metrics["per_label"], os.path.splitext(path)[0] + "_per_label.png")


def plot_per_label(per_label, path):
    """Saves precision, recall and F1 of each label (multi-label tasks), best F1 first."""
    names = sorted(per_label, key=lambda n: -per_label[n]["f1"])
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.3 * len(names) + 1)))
    y = np.arange(len(names))
    for offset, key in ((-0.25, "precision"), (0.0, "recall"), (0.25, "f1")):
        ax.barh(y + offset, [per_label[n][key] for n in names], height=0.25, label=key)
    ax.set_yticks(y, [f"{n} ({per_label[n]['support']})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (support in brackets)")
    ax.legend(loc="lower right")
    ax.set_title("per-label precision, recall and F1")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion_matrix(matrix, names, path):
    """Saves a labelled confusion matrix (rows: gold, columns: predicted)."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    ax.set_title("confusion matrix")
    fig.tight_layout()
    save_figure(fig, path)


def plot_history(history, path, metric):
    """Saves training loss and the validation metric against the step."""
    train = [h for h in history if "loss" in h]
    evals = [h for h in history if metric in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(
            [h["step"] for h in train],
            [h["loss"] for h in train],
            label="training loss",
            color="tab:blue",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if evals:
        other = ax.twinx()
        other.plot(
            [h["step"] for h in evals],
            [h[metric] for h in evals],
            "o-",
            color="tab:orange",
            label=f"validation {metric}",
        )
        other.set_ylabel(metric)
        other.legend(loc="upper right")
    if train:  # a run of `trainer.epochs: 0` has no training loss
        ax.legend(loc="upper left")
    ax.set_title("training curves")
    fig.tight_layout()
    save_figure(fig, path)
