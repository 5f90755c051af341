"""Where a backbone's forward pass spends its time, by TensorFlow op type.

Runs the backbone on a batch of random token ids under a precision policy,
traces a few calls with `tf.profiler` and prints each op type's share of the
op time (the profiler's framework_op_stats, summed by type). Comparing
`--precision=float32` with `--precision=bfloat16` found TF's bfloat16 erfc
kernel (exact GELU) taking more time than the bfloat16 matmuls saved
(BENCHMARKS.md, the AMD EPYC with AVX512_BF16).

`--blocks=lean` (the default) runs BERT blocks as the exports do, through
`LeanBert` (`Backbone.packed_sequence_output`, a row per text);
`--blocks=keras-hub` runs the keras-hub model.

Usage:
    python tools/profile_forward.py --precision=float32
    python tools/profile_forward.py --precision=bfloat16 --batch_size=64 --length=64
"""

import collections
import glob
import json
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("backbone", "default", "Backbone spec.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "float16"], "Compute type.")
flags.DEFINE_enum(
    "blocks", "lean", ["lean", "keras-hub"], "BERT blocks: LeanBert's or keras-hub's."
)
flags.DEFINE_integer("batch_size", 64, "Rows per call.")
flags.DEFINE_integer("length", 64, "Tokens per row.")
flags.DEFINE_integer("calls", 5, "Profiled calls (after 3 warm-up calls).")
flags.DEFINE_integer("top", 12, "Op types to print.")
FLAGS = flags.FLAGS


def _op_time_by_type(logdir):
    """`{op type: self time in microseconds}` from the profile in `logdir`."""
    # The profiler's own converter; TensorBoard's plugin shows the same table.
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    xplanes = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(xplanes, "framework_op_stats")
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    columns = [c["id"] for c in table["cols"]]
    by_type = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [c.get("v") for c in row["c"]]))
        if values["type"] != "IDLE":  # threads waiting, not work
            by_type[values["type"]] += values["total_self_time"]
    return by_type


def main(argv):
    del argv
    import tensorflow as tf

    from tftransfer import backbones
    from tftransfer.data import packing
    from tftransfer.training import precision

    with precision.dtype_policy(precision.policy_name(FLAGS.precision)):
        backbone, _ = backbones.load(FLAGS.backbone)
    rng = np.random.default_rng(0)
    shape = (FLAGS.batch_size, FLAGS.length)
    features = {
        "token_ids": tf.constant(rng.integers(1000, 20000, shape), tf.int32),
        "segment_ids": tf.zeros(shape, tf.int32),
        "padding_mask": tf.ones(shape, tf.int32),
    }
    wrapped = backbones.Backbone.wrap(backbone)
    lean = FLAGS.blocks == "lean" and wrapped.lean_blocks
    if lean:
        forward = tf.function(lambda f: wrapped.packed_sequence_output(packing.one_per_row(f)))
    else:
        forward = tf.function(lambda f: wrapped.outputs(f)["sequence_output"])
    for _ in range(3):
        forward(features).numpy()
    begin = time.perf_counter()
    for _ in range(FLAGS.calls):
        forward(features).numpy()
    call_ms = (time.perf_counter() - begin) / FLAGS.calls * 1000
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(FLAGS.calls):
            forward(features).numpy()
        tf.profiler.experimental.stop()
        by_type = _op_time_by_type(logdir)
    total = sum(by_type.values())
    blocks = "LeanBert" if lean else "keras-hub"
    where = f"{FLAGS.precision}, {blocks} blocks, {shape[0]} x {shape[1]} tokens"
    print(f"{where}: {call_ms:.1f} ms per call")
    print("| op type | ms per call | share |")
    print("|---|---|---|")
    for op_type, micros in by_type.most_common(FLAGS.top):
        print(f"| {op_type} | {micros / FLAGS.calls / 1000:.1f} | {100 * micros / total:.1f}% |")


if __name__ == "__main__":
    app.run(main)
