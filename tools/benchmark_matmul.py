"""Matmul rates of the products a SmolLM2 step makes, TF and torch.

The ceiling for training speed on a CPU is how fast it multiplies the
model's own matrix shapes; `--products=training` (the default) measures them
alone (median of `--repeats` after one warm-up), in TensorFlow and, if
installed, torch, each with the threads it would use in training.
`--dtype=bfloat16` measures bf16 products (what `mixed_precision: bfloat16`
multiplies in), which run on the CPU's own bf16 units where it has
AVX512_BF16 or AMX and are emulated (slower than fp32) where it has neither.

`--products=decoding` measures the few-row products of a decoding step (1
and 8 rows) with the kernel in both layouts: `[K, N]` as Keras stores it,
and `[N, K]` multiplied with `transpose_b`, as exports store it
(`serving_weights.in_dtype(transposed=True)`). Each timed call multiplies by
`--chain_mb` of distinct kernels so that, as in a real step, the weights
come from memory rather than cache; the layouts alternate for `--rounds`.
The products of a chain are independent (TensorFlow runs two at a time, as
it runs a layer's query, key and value projections); "one after another"
makes each wait for the one before (as the output and down projections
wait), whole or in two halves of the columns, as decoding runs those.

Usage:
    python tools/benchmark_matmul.py --threads=2
    python tools/benchmark_matmul.py --threads=2 --dtype=bfloat16
    python tools/benchmark_matmul.py --products=decoding --dtype=bfloat16
"""

import statistics
import time

from absl import app, flags
from benchmarking import common

flags.DEFINE_integer("threads", 2, "torch threads (TensorFlow uses its default pools).")
flags.DEFINE_integer("repeats", 5, "Timed products per shape.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "The type multiplied.")
flags.DEFINE_enum("products", "training", ["training", "decoding"], "Which products.")
flags.DEFINE_integer("rounds", 3, "Decoding: alternating rounds of the two layouts.")
flags.DEFINE_integer("chain_mb", 600, "Decoding: MB of distinct kernels per timed call.")
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

#: (K, N, where): the kernels of a SmolLM2 decoder layer.
DECODING_KERNELS = (
    (576, 576, "query and output projections"),
    (576, 192, "key and value projections"),
    (576, 1536, "gate and up projections"),
    (1536, 576, "down projection"),
)


def _rate(multiply, m, k, n):
    multiply()
    times = []
    for _ in range(FLAGS.repeats):
        begin = time.perf_counter()
        multiply()
        times.append(time.perf_counter() - begin)
    return 2 * m * k * n / statistics.median(times) / 1e9


def _training(tf, torch):
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


def _chain(tf, x, kernels, transposed, serial=False, halves=False):
    """One graph multiplying `x` by every kernel (a column of each kept, so none is pruned).

    `serial`: each product's input waits for the product before; `halves`:
    each as two products of half the (transposed) kernel's rows.
    """

    def product(x, w):
        if not halves:
            return tf.matmul(x, w, transpose_b=transposed)
        half = w.shape[0] // 2
        return tf.concat([tf.matmul(x, p, transpose_b=True) for p in (w[:half], w[half:])], 1)

    def run():
        columns, inputs = [], x
        for w in kernels:
            columns.append(product(inputs, w)[:, :1])
            if serial:
                inputs = x + 1e-6 * columns[-1]
        return tf.add_n(columns)

    return tf.function(run)


def _speedup(before, after):
    ratios = [a / b for a, b in zip(before, after)]
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(after) * 1e6:.1f} | {statistics.median(ratios):.2f}× ({rounds})"


def _per_product(call, count):
    """Seconds per product of a chain of `count`, after a warm-up call."""
    call()
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) / count


def _decoding(tf, torch):
    print(f"CPU flags: {' '.join(common.cpu_flags())}")
    print(
        "| rows | K x N | where | [K, N] µs | [N, K] µs | [N, K] speed-up (rounds) "
        "| one after another µs | in halves µs | halves speed-up (rounds) | torch µs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    tf_dtype = getattr(tf, FLAGS.dtype)
    for rows in (1, 8):
        for k, n, where in DECODING_KERNELS:
            count = max(1, FLAGS.chain_mb * 2**20 // (k * n * tf_dtype.size))
            x = tf.cast(tf.random.normal([rows, k]), tf_dtype)
            kn = [tf.Variable(tf.cast(tf.random.normal([k, n]), tf_dtype)) for _ in range(count)]
            nk = [tf.Variable(tf.transpose(w)) for w in kn]
            layouts = {
                "kn": _chain(tf, x, kn, False),
                "nk": _chain(tf, x, nk, True),
                "serial": _chain(tf, x, nk, True, serial=True),
                "halves": _chain(tf, x, nk, True, serial=True, halves=True),
            }
            times = {name: [] for name in layouts}
            for _ in range(FLAGS.rounds):
                for name, call in layouts.items():
                    times[name].append(_per_product(call, count))
            del kn, nk, layouts
            torch_us = "-"
            if torch is not None:  # nn.Linear's layout, [N, K]
                torch_dtype = getattr(torch, FLAGS.dtype)
                tx = torch.randn(rows, k, dtype=torch_dtype)
                weights = [torch.randn(n, k, dtype=torch_dtype) for _ in range(count)]

                def torch_chain(weights=weights, tx=tx):
                    for w in weights:
                        torch.nn.functional.linear(tx, w)

                torch_us = f"{_per_product(torch_chain, count) * 1e6:.1f}"
            print(
                f"| {rows} | {k} x {n} | {where} | {statistics.median(times['kn']) * 1e6:.1f} "
                f"| {_speedup(times['kn'], times['nk'])} "
                f"| {statistics.median(times['serial']) * 1e6:.1f} "
                f"| {_speedup(times['serial'], times['halves'])} | {torch_us} |",
                flush=True,
            )


def main(argv):
    del argv
    import tensorflow as tf

    try:
        import torch

        torch.set_num_threads(FLAGS.threads)
    except ImportError:
        torch = None
    print(f"{FLAGS.dtype} products")
    if FLAGS.products == "training":
        _training(tf, torch)
    else:
        _decoding(tf, torch)


if __name__ == "__main__":
    app.run(main)
