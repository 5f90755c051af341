"""Where a training step spends its time, by TensorFlow op type.

Builds the run a config describes (as `tftransfer train` does: backbone,
task, packing, precision, optimizer), takes batches from its own training
stream and traces `--steps` optimizer steps with `tf.profiler`. Each op's
time is read from the trace of TensorFlow's compute threads and summed by
op type. By default TensorFlow runs one op at a time here
(`--inter_op_threads=1`), so that op times add up to the step; with more,
independent ops (a weight gradient's two matmuls) overlap and share the
cores, and their times count twice. The profiler's own per-op table
(`tools/profile_forward.py`) leaves much of a training step as "idle".

Usage:
    python tools/profile_train_step.py --config_file=configs/shakespeare_smollm2.yaml \\
        --params_override=runtime.mixed_precision=bfloat16
    python tools/profile_train_step.py --config_file=configs/sst2.yaml --top=25
"""

import collections
import glob
import tempfile
import time

from absl import app, flags

flags.DEFINE_multi_string("config_file", None, "Experiment YAML file(s).", required=True)
flags.DEFINE_multi_string("params_override", [], "`a.b=1,c.d=x` overrides.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first (tracing, caches).")
flags.DEFINE_integer("steps", 2, "Profiled steps.")
flags.DEFINE_integer("top", 20, "Op types to print.")
flags.DEFINE_integer(
    "inter_op_threads", 1, "TensorFlow's inter-op threads (0: its default, one per core)."
)
FLAGS = flags.FLAGS


def _op_times(logdir):
    """`{op type: seconds}` of the leaf ops on TF's compute threads, and the traced span."""
    # The XPlane protocol buffer the profiler writes: TensorBoard's trace viewer reads it too.
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    times = collections.Counter()
    begin, end = float("inf"), 0
    for path in glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            names = {key: meta.name for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    # Leaf ops are named "<op name>:<op type>"; the executor's
                    # own events (ExecutorState::Process) contain them.
                    name = names.get(event.metadata_id, "")
                    start = line.timestamp_ns * 1000 + event.offset_ps
                    begin, end = min(begin, start), max(end, start + event.duration_ps)
                    if ":" in name and "::" not in name:
                        times[name.rpartition(":")[2]] += event.duration_ps / 1e12
    return times, (end - begin) / 1e12


def main(argv):
    del argv
    import tensorflow as tf

    if FLAGS.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    from tftransfer import configs, experiment

    params = configs.load(FLAGS.config_file, FLAGS.params_override)
    # Warm-up, then the chosen batches three times (tracing, timing, profiling).
    run = experiment.build(params, total_steps=FLAGS.warmup_steps + 3 * FLAGS.steps)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = experiment._trainer(run, model_dir)
        batches = iter(run.train_dataset())
        for _ in range(FLAGS.warmup_steps):
            float(trainer._train_step(*next(batches)))
        chosen = [next(batches) for _ in range(FLAGS.steps)]
        for batch in chosen:  # packed batches vary in rows: each shape traces once first
            float(trainer._train_step(*batch))
        started = time.perf_counter()
        for batch in chosen:
            float(trainer._train_step(*batch))
        step_s = (time.perf_counter() - started) / FLAGS.steps
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            for batch in chosen:
                float(trainer._train_step(*batch))
            tf.profiler.experimental.stop()
            times, span = _op_times(logdir)
    total = sum(times.values())
    n = FLAGS.steps
    print(
        f"{step_s * 1000:.0f} ms per step untraced ({params.runtime.mixed_precision} "
        f"requested); traced {span / n * 1000:.0f} ms, of which ops {total / n * 1000:.0f} ms"
    )
    print("| op type | ms per step | share of op time |")
    print("|---|---|---|")
    for op_type, seconds in times.most_common(FLAGS.top):
        print(f"| {op_type} | {seconds / n * 1000:.1f} | {100 * seconds / total:.1f}% |")


if __name__ == "__main__":
    app.run(main)
