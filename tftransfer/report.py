"""Run reports: metrics JSON, training curves and confusion matrices as PNG.

Example:

>>> import os, tempfile
>>> from tftransfer import report
>>> path = os.path.join(tempfile.mkdtemp(), "eval_validation.json")
>>> metrics = {"accuracy": 0.75, "confusion_matrix": [[1, 1], [0, 2]], "labels": ["neg", "pos"]}
>>> report.write_metrics(metrics, path)
>>> sorted(os.listdir(os.path.dirname(path)))
['eval_validation.json', 'eval_validation_confusion_matrix.png']
"""

import contextlib
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def write_json(data, path):
    """Writes JSON through a temporary file so a crash leaves no half file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_folder(final, tmp):
    """Yields `tmp` to write a folder into; renames it to `final` if the block succeeds.

    On any error (or Ctrl-C) `tmp` is removed, so a crash leaves no half
    folder at `final` (exports, backbone presets).
    """
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_metrics(metrics, path):
    """Writes metrics JSON, and the confusion matrix PNG next to it if any."""
    write_json(metrics, path)
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            metrics["labels"],
            os.path.splitext(path)[0] + "_confusion_matrix.png",
        )


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
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    ax.legend(loc="upper left")
    ax.set_title("training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
