"""Sentences per second of several exported SavedModels, side by side.

For a distilled student against its teacher (or any exports of one task):
each export is served in a fresh process (load, replay its TF Serving warmup
records, one untimed pass), which then times `--passes` passes over the
texts in requests of `--request_size`, and reports texts/s and its peak RSS.
The exports take turns in every round (alternating rounds), so machine load
hits them alike; medians over `--rounds` are reported with each round's
ratio to the first export.

    python tools/benchmark_exports.py --exports=runs/sst2_full/export/1,runs/student/export/1 \
      --input=$DATA/sst2/dev.tsv --text_column=sentence

This file is also the child (`python benchmark_exports.py --child=<export>`).
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags
from benchmarking import common

flags.DEFINE_list("exports", [], "SavedModel version folders; the first is the reference.")
flags.DEFINE_string("input", "", "Texts: a CSV/TSV/JSONL file any tftransfer reader takes.")
flags.DEFINE_string("text_column", "sentence", "The text column of --input.")
flags.DEFINE_string("format", "", "Format of --input (empty: from its name).")
flags.DEFINE_enum("quoting", "none", ["minimal", "none"], "CSV quoting of --input.")
flags.DEFINE_integer("max_texts", 872, "Texts read from --input (0 = all).")
flags.DEFINE_integer("request_size", 32, "Texts per request.")
flags.DEFINE_integer("passes", 3, "Timed passes over the texts per round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds; medians are reported.")
flags.DEFINE_string("output", "runs/benchmark_exports.json", "Where to write the JSON results.")
flags.DEFINE_string("child", "", "Internal: serve this export and print its figures.")

FLAGS = flags.FLAGS


def _texts():
    from tftransfer.data import readers
    from tftransfer.data.data_config import InputConfig

    spec = InputConfig(
        path=FLAGS.input,
        format=FLAGS.format,
        text_column=FLAGS.text_column,
        quoting=FLAGS.quoting,
        max_examples=FLAGS.max_texts,
    )
    return readers.read(spec, need_labels=False).texts


def _serve(export_path, texts):
    """The child: texts/s of one export over `texts` after warmup."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    from tftransfer import serving_warmup

    loaded = tf.saved_model.load(export_path)
    serving_warmup.replay(loaded, export_path)
    call = loaded.signatures["serving_default"]
    size = FLAGS.request_size
    requests = [texts[i : i + size] for i in range(0, len(texts), size)]
    for request in requests:  # untimed: every request shape traced once
        call(text=tf.constant(request))
    start = time.perf_counter()
    for _ in range(FLAGS.passes):
        for request in requests:
            call(text=tf.constant(request))
    elapsed = time.perf_counter() - start
    return {
        "texts_per_second": FLAGS.passes * len(texts) / elapsed,
        "peak_rss_mb": common.peak_rss_mb(),
    }


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(_serve(FLAGS.child, _texts())))
        return
    if len(FLAGS.exports) < 1 or not FLAGS.input:
        raise app.UsageError("give --exports (one or more) and --input")
    forwarded = [a for a in sys.argv[1:] if not a.startswith(("--exports", "--output", "--rounds"))]
    rounds = {path: [] for path in FLAGS.exports}
    for r in range(FLAGS.rounds):
        for path in FLAGS.exports:
            result = common.run_child_argv(
                [os.path.abspath(__file__), f"--child={path}"] + forwarded
            )
            rounds[path].append(result)
            print(f"round {r + 1}: {path}: {result['texts_per_second']:.1f} texts/s", flush=True)
    reference = FLAGS.exports[0]
    summary = {"cpu_flags": common.cpu_flags(), "command": " ".join(sys.argv), "exports": {}}
    for path in FLAGS.exports:
        speeds = [x["texts_per_second"] for x in rounds[path]]
        ratios = [s / x["texts_per_second"] for s, x in zip(speeds, rounds[reference])]
        summary["exports"][path] = {
            "texts_per_second": statistics.median(speeds),
            "ratio_to_first": statistics.median(ratios),
            "round_ratios": ratios,
            "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in rounds[path]),
        }
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(f"\nCPU flags: {' '.join(summary['cpu_flags'])}")
    print("| export | texts/s (median) | × the first (per round) | peak RSS |")
    print("|---|---|---|---|")
    for path, row in summary["exports"].items():
        shown = ", ".join(f"{x:.2f}" for x in row["round_ratios"])
        print(
            f"| {path} | {row['texts_per_second']:.1f} | {row['ratio_to_first']:.2f} ({shown}) "
            f"| {row['peak_rss_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    app.run(main)
