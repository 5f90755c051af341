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
def atomic_folder(final):
    """Yields a temporary folder to write into; renames it to `final` if the block succeeds.

    The temporary folder, `.tmp-<name>-<pid>` beside `final`, is removed on
    any error (or Ctrl-C), so a crash leaves no half folder at `final`
    (exports, backbone presets). One left by a killed process (whose pid no
    longer runs) is removed the next time a folder is written there.

    Example:

    >>> import os, tempfile
    >>> parent = tempfile.mkdtemp()
    >>> with atomic_folder(os.path.join(parent, "1")) as tmp:
    ...     open(os.path.join(tmp, "saved_model.pb"), "w").close()
    >>> os.listdir(parent)
    ['1']
    """
    parent, name = os.path.split(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(parent)
    # TF Serving only loads all-digit folder names, so it ignores this one.
    tmp = os.path.join(parent, f"{TMP_PREFIX}{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


TMP_PREFIX = ".tmp-"


def process_running(pid):
    """Whether process `pid` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def remove_stale_temporaries(parent):
    """Removes `atomic_folder` leftovers in `parent` whose writer is gone."""
    for entry in os.listdir(parent):
        pid = entry.rpartition("-")[2]
        if entry.startswith(TMP_PREFIX) and pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


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
