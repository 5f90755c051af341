"""Matmul rates of the products a SmolLM2 training step makes, TF and torch.

The ceiling for training speed on a CPU is how fast it multiplies the
model's own matrix shapes; this measures them alone (median of `--repeats`
after one warm-up), in TensorFlow and, if installed, torch, each with the
threads it would use in training. `--dtype=bfloat16` measures bf16
products (what `mixed_precision: bfloat16` multiplies in), which run on the
CPU's own bf16 units where it has AVX512_BF16 or AMX and are emulated
(slower than fp32) where it has neither.

Usage:
    python tools/benchmark_matmul.py --threads=2
    python tools/benchmark_matmul.py --threads=2 --dtype=bfloat16
"""

import statistics
import time

from absl import app, flags

flags.DEFINE_integer("threads", 2, "torch threads (TensorFlow uses its default pools).")
flags.DEFINE_integer("repeats", 5, "Timed products per shape.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "The type multiplied.")
FLAGS = flags.FLAGS

#: (M, K, N, where): SmolLM2 at batch 8 x 256 tokens, and the usual 2048^3.
SHAPES = (
    (2048, 576, 1536, "gate and up projections"),
    (2048, 1536, 576, "down projection"),
    (2048, 576, 576, "query and output projections"),
    (2048, 576, 49152, "tied output layer"),
    (576, 2048, 1536, "a weight gradient"),
    (2048, 2048, 2048, "the usual peak figure"),
)


def _rate(multiply, m, k, n):
    multiply()
    times = []
    for _ in range(FLAGS.repeats):
        begin = time.perf_counter()
        multiply()
        times.append(time.perf_counter() - begin)
    return 2 * m * k * n / statistics.median(times) / 1e9


def main(argv):
    del argv
    import tensorflow as tf

    try:
        import torch

        torch.set_num_threads(FLAGS.threads)
    except ImportError:
        torch = None
    print(f"{FLAGS.dtype} products")
    print("| product (M x K x N) | where | TensorFlow GFLOP/s | torch GFLOP/s |")
    print("|---|---|---|---|")
    tf_dtype = getattr(tf, FLAGS.dtype)
    for m, k, n, where in SHAPES:
        a = tf.cast(tf.random.normal([m, k]), tf_dtype)
        b = tf.cast(tf.random.normal([k, n]), tf_dtype)
        product = tf.function(tf.matmul)
        tf_rate = _rate(lambda: product(a, b).numpy(), m, k, n)
        torch_rate = "-"
        if torch is not None:
            torch_dtype = getattr(torch, FLAGS.dtype)
            ta, tb = torch.randn(m, k, dtype=torch_dtype), torch.randn(k, n, dtype=torch_dtype)
            torch_rate = f"{_rate(lambda: ta @ tb, m, k, n):.0f}"
        print(f"| {m} x {k} x {n} | {where} | {tf_rate:.0f} | {torch_rate} |", flush=True)


if __name__ == "__main__":
    app.run(main)
