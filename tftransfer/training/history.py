"""A run's history: `history.jsonl` records (training loss, evaluations) and TensorBoard scalars.

Example:

>>> import tempfile
>>> from tftransfer.training import history
>>> run = tempfile.mkdtemp()
>>> history.append(f"{run}/history.jsonl", {"step": 10, "accuracy": 0.9})
>>> history.read(run)
[{'step': 10, 'accuracy': 0.9}]
"""

import json
import time

import tensorflow as tf

from tftransfer.run_dir import RunDir


def read(model_dir):
    """Returns the records of `history.jsonl` (training and evaluation)."""
    path = RunDir(model_dir).history
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append(path, record):
    """Appends one record to a `history.jsonl`."""
    # gfile: the model_dir may be on gs:// (there an append rewrites the object).
    with tf.io.gfile.GFile(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class LossLog:
    """Averages the training loss over `every` steps into the history and TensorBoard.

    Args:
        history_path: the run's `history.jsonl`.
        summary_dir: TensorBoard folder for the training scalars.
        every: steps per record.
        global_batch_size: examples per step, for `examples_per_second`.
    """

    def __init__(self, history_path, summary_dir, every, global_batch_size):
        self.history_path = history_path
        self.every = max(1, every)
        self.global_batch_size = global_batch_size
        self.writer = tf.summary.create_file_writer(summary_dir)
        self.total, self.steps, self.started = 0.0, 0, time.time()

    def add(self, step, loss, learning_rate, last=False, steps=1):
        """Adds the mean `loss` of the `steps` steps that ended at `step`."""
        self.total += loss * steps
        self.steps += steps
        # Several steps per call (steps_per_execution) may pass a multiple.
        if not (step // self.every > (step - steps) // self.every or last):
            return
        elapsed = time.time() - self.started
        record = {
            "step": step,
            "loss": self.total / self.steps,
            "learning_rate": learning_rate,
            "examples_per_second": self.steps * self.global_batch_size / elapsed,
        }
        append(self.history_path, record)
        with self.writer.as_default(step=step):
            for key in ("loss", "learning_rate", "examples_per_second"):
                tf.summary.scalar(key, record[key])
        self.total, self.steps, self.started = 0.0, 0, time.time()
