"""LeanBert's bfloat16 bias handling, side by side in one process.

In bfloat16 on oneDNN CPUs `LeanBert` folds each projection's bias into its
matmul (a column of ones in the input, the bias as a row of the kernel),
because TF's bfloat16 BiasAdd is slow on CPUs. This
times that against the MatMul + BiasAdd form it replaced, alternating the two
round by round on the same weights: the packed forward at serving shapes
(`--serve_shapes`) and forward plus backward at a training shape
(`--train_shapes`; no optimizer update). It prints the per-round ratios.
In training only the query/key/value projection (and pre-norm blocks) still
goes through `_dense`: post-norm blocks add the other biases in the fused
chains after their matmuls (`fused_elementwise`), whichever form this picks.

Usage:
    python tools/benchmark_bias_fold.py --rounds=5
"""

import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("backbone", "default", "Backbone spec (BERT family).")
flags.DEFINE_list("serve_shapes", ["64x64", "16x384"], "Rows x tokens of the serving calls.")
flags.DEFINE_list("train_shapes", ["8x64"], "Rows x tokens of the training passes.")
flags.DEFINE_integer("rounds", 5, "Alternating rounds.")
flags.DEFINE_integer("calls", 3, "Calls per side per round.")
FLAGS = flags.FLAGS


def _call(backbone, shape, train, dense):
    """A traced `features -> value` of `backbone` with `lean_bert._dense` as `dense`."""
    import tensorflow as tf

    from tftransfer.backbones import lean_bert
    from tftransfer.data import packing

    rows, length = (int(n) for n in shape.split("x"))
    rng = np.random.default_rng(0)
    features = {
        "token_ids": tf.constant(rng.integers(1000, 20000, (rows, length)), tf.int32),
        "segment_ids": tf.zeros((rows, length), tf.int32),
        "padding_mask": tf.ones((rows, length), tf.int32),
    }

    def forward(f):
        return backbone.packed_sequence_output(packing.one_per_row(f), training=train)

    def step(f):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(forward(f), tf.float32) ** 2)
        grads = tape.gradient(loss, backbone.model.trainable_variables)
        return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)) for g in grads if g is not None])

    function = tf.function(step if train else forward)
    kept, lean_bert._dense = lean_bert._dense, dense
    try:
        function(features)  # traced with this `_dense`
    finally:
        lean_bert._dense = kept
    return lambda: function(features).numpy()


def main(argv):
    del argv
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    from tftransfer import backbones
    from tftransfer.backbones import lean_bert
    from tftransfer.training import auto_precision

    folded = lean_bert._dense

    def bias_add(x, kernel, bias, bias_add=False):
        """The form folding replaced: MatMul, then BiasAdd (which the remapper fuses)."""
        return folded(x, kernel, bias, bias_add=True)

    backbone = backbones.Backbone.wrap(backbones.load(FLAGS.backbone)[0])
    if not backbone.lean_blocks:
        raise SystemExit(f"{FLAGS.backbone}: its blocks do not run through LeanBert")
    flags_seen = " ".join(
        sorted(auto_precision.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    )
    print(f"CPU flags: {flags_seen}; bfloat16; {FLAGS.rounds} alternating rounds")
    print("| pass | shape | MatMul + BiasAdd, ms | folded, ms | ratio per round |")
    print("|---|---|---|---|---|")
    shapes = [(s, False) for s in FLAGS.serve_shapes] + [(s, True) for s in FLAGS.train_shapes]
    for shape, train in shapes:
        sides = {
            "bias_add": _call(backbone, shape, train, bias_add),
            "folded": _call(backbone, shape, train, folded),
        }
        times = {name: [] for name in sides}
        for _ in range(FLAGS.rounds):
            for name, run in sides.items():
                run()  # one untimed call: the other side ran last
                start = time.perf_counter()
                for _ in range(FLAGS.calls):
                    run()
                times[name].append((time.perf_counter() - start) / FLAGS.calls * 1000)
        ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(times["bias_add"], times["folded"]))
        median = {name: float(np.median(t)) for name, t in times.items()}
        what = "forward + backward" if train else "forward (serving)"
        print(
            f"| {what} | {shape} | {median['bias_add']:.1f} | {median['folded']:.1f} | {ratios} |"
        )


if __name__ == "__main__":
    app.run(main)
