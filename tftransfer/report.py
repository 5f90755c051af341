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
import io
import json
import os

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Everything here writes through `tf.io.gfile`, so a model_dir may be a
# `gs://` bucket (TPUs read and write only there) or any TF filesystem.


def write_text(text, path):
    """Writes `text` through a temporary file so a crash leaves no half file."""
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path):
    """Reads a JSON file from any TF filesystem."""
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(data, path):
    """Writes JSON through a temporary file so a crash leaves no half file."""
    write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG to any TF filesystem and closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _local(path):
    return "://" not in path


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
    parent, name = os.path.split(os.path.abspath(final) if _local(final) else final)
    tf.io.gfile.makedirs(parent)
    remove_stale_temporaries(parent)
    # TF Serving only loads all-digit folder names, so it ignores this one.
    tmp = os.path.join(parent, f"{TMP_PREFIX}{name}-{os.getpid()}")
    remove_tree(tmp)
    tf.io.gfile.makedirs(tmp)
    try:
        yield tmp
        if _local(final):
            os.rename(tmp, final)
        else:
            _move_files(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise


def _move_files(source, target):
    """Moves a folder's files one by one, for filesystems without folders.

    Object stores (gs://) and TF's ram:// have no folders to rename, only
    objects named by path (ram:// renames the one name and orphans the
    files under it). Not atomic there, which the export tolerates: TF
    Serving polls for all-digit folders, and `saved_model.pb` is moved last.
    """
    found = {
        os.path.join(folder, name)[len(source) :].lstrip("/")
        for folder, _, names in tf.io.gfile.walk(source)
        for name in names
    }
    # ram:// lists by name prefix, so walking `assets` also yields
    # `assets.extra`'s files as `assets/.extra/...`: keep only real files.
    files = [f for f in found if not tf.io.gfile.isdir(os.path.join(source, f))]
    files = [f for f in files if tf.io.gfile.exists(os.path.join(source, f))]
    files.sort(key=lambda f: (f == "saved_model.pb", f))
    for relative in files:
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(target, relative)))
        tf.io.gfile.rename(os.path.join(source, relative), os.path.join(target, relative))
    remove_tree(source)


def copy_files(source, target):
    """Copies a local folder's files into `target` on any TF filesystem."""
    for folder, _, names in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target if relative == "." else os.path.join(target, relative)
        tf.io.gfile.makedirs(destination)
        for name in names:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(destination, name), True)


def remove_tree(path):
    """Removes a folder (any TF filesystem) if it exists."""
    if tf.io.gfile.exists(path):
        try:
            tf.io.gfile.rmtree(path)
        except tf.errors.NotFoundError:
            pass  # ram:// lists names it no longer holds; what is left is gone


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
    """Removes `atomic_folder` leftovers in `parent` whose writer is gone.

    Only on a local disk: on a shared filesystem the pid may be another host's.
    """
    if not _local(parent):
        return
    for entry in tf.io.gfile.listdir(parent):
        entry = entry.rstrip("/")
        pid = entry.rpartition("-")[2]
        if entry.startswith(TMP_PREFIX) and pid.isdigit() and not process_running(int(pid)):
            remove_tree(os.path.join(parent, entry))


def write_metrics(metrics, path):
    """Writes metrics JSON, and next to it the confusion matrix or per-label F1 PNG."""
    write_json(metrics, path)
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
