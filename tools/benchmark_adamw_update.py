"""The token embedding's AdamW update, fused against Keras' own, side by side.

A token embedding's gradient comes as `IndexedSlices` (the rows of a batch's
tokens). `PreReducedAdamW` makes it dense and runs TF's fused
`ResourceApplyAdam`; before, it took Keras' elementwise Adam ops, a pass over
the table each. This times one optimizer step of both on a MiniLM-sized table
(`--rows` x `--width`) with a batch's rows (`--tokens`), alternating round by
round. Both give the same weights (tests/test_optimization.py).

Usage:
    python tools/benchmark_adamw_update.py --rounds=5
"""

import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer("rows", 30522, "Embedding rows (vocabulary).")
flags.DEFINE_integer("width", 384, "Embedding width.")
flags.DEFINE_integer("tokens", 2048, "Gradient rows per step (batch x length).")
flags.DEFINE_integer("rounds", 5, "Alternating rounds.")
flags.DEFINE_integer("steps", 10, "Optimizer steps per side per round.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from tftransfer.training import auto_precision, optimization

    class KerasUpdate(optimization.PreReducedAdamW):
        """The form it replaced: Keras' own Adam ops for sparse gradients."""

        def update_step(self, gradient, variable, learning_rate):
            if isinstance(gradient, tf.IndexedSlices):
                return keras.optimizers.AdamW.update_step(self, gradient, variable, learning_rate)
            return super().update_step(gradient, variable, learning_rate)

    rng = np.random.default_rng(0)
    table = rng.normal(size=(FLAGS.rows, FLAGS.width)).astype("float32")
    shape = tf.constant([FLAGS.rows, FLAGS.width], tf.int64)
    rows = tf.constant(rng.integers(0, FLAGS.rows, FLAGS.tokens), tf.int64)
    values = tf.constant(rng.normal(size=(FLAGS.tokens, FLAGS.width)).astype("float32"))

    def step_of(optimizer_class):
        variable = keras.Variable(table, name="token_embedding")
        optimizer = optimizer_class(learning_rate=1e-4, weight_decay=0.01)
        optimizer.build([variable])
        step = tf.function(
            lambda: optimizer.apply([tf.IndexedSlices(values, rows, shape)], [variable])
        )
        step()
        return step

    sides = {"Keras' ops": step_of(KerasUpdate), "fused": step_of(optimization.PreReducedAdamW)}
    times = {name: [] for name in sides}
    for _ in range(FLAGS.rounds):
        for name, step in sides.items():
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                step()
            times[name].append((time.perf_counter() - start) / FLAGS.steps * 1000)
    seen = auto_precision.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    print(f"CPU flags: {' '.join(sorted(seen))}; {FLAGS.rows} x {FLAGS.width}, {FLAGS.tokens} rows")
    for name, values_ms in times.items():
        rounds = ", ".join(f"{t:.1f}" for t in values_ms)
        print(f"{name}: {np.median(values_ms):.1f} ms per step ({rounds})")
    ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(*times.values()))
    print(f"ratio per round: {ratios}")


if __name__ == "__main__":
    app.run(main)
