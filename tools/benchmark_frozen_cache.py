"""Frozen-feature caching against the frozen backbone run at every step, side by side.

Trains the same `transfer.strategy: frozen` config with
`transfer.cache_features` off and on, each in a fresh process, alternating
in every round, and reports each one's epoch times (epoch 1 of the cached
run includes computing the features) and validation accuracy: with the same
seed the two must agree.

    python tools/benchmark_frozen_cache.py --config_file=configs/sst2_minilm.yaml \
      --config_file=configs/local/sst2.yaml \
      --params_override=data.train.max_examples=8000,trainer.epochs=3,trainer.learning_rate=1e-3

This file is also the child (`--child=<true|false>`).
"""

import json
import os
import statistics
import sys
import tempfile

from absl import app, flags
from benchmarking import common

flags.DEFINE_multi_string("config_file", [], "Config files, layered in order.")
flags.DEFINE_string("params_override", "", "Overrides on top (key=value,...).")
flags.DEFINE_integer("rounds", 2, "Alternating rounds; medians are reported.")
flags.DEFINE_string("output", "runs/benchmark_frozen_cache.json", "Where to write the JSON.")
flags.DEFINE_string("child", "", "Internal: train once with cache_features=<true|false>.")

FLAGS = flags.FLAGS


def _train(cache):
    from tftransfer import config_files, configs, experiment, fileio
    from tftransfer.run_dir import RunDir

    overrides = config_files.parse_override_string(FLAGS.params_override)
    params = configs.load(FLAGS.config_file, overrides)
    configs.override(
        params, {"transfer": {"strategy": "frozen", "cache_features": cache}}, "benchmark"
    )
    with tempfile.TemporaryDirectory() as model_dir:
        metrics = experiment.train(params, model_dir)
        summary = fileio.read_json(RunDir(model_dir).summary)
    epochs = summary["epoch_seconds"]
    return {
        "epoch_seconds": [epochs[k] for k in sorted(epochs, key=int)],
        "feature_cache_seconds": summary.get("feature_cache_seconds", 0.0),
        "accuracy": metrics.get("accuracy"),
        "peak_rss_mb": summary["peak_rss_mb"],
    }


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(_train(FLAGS.child == "true")))
        return
    forwarded = [a for a in sys.argv[1:] if not a.startswith(("--rounds", "--output"))]
    runs = {"false": [], "true": []}
    for r in range(FLAGS.rounds):
        for cache in runs:
            result = common.run_child_argv(
                [os.path.abspath(__file__), f"--child={cache}"] + forwarded
            )
            runs[cache].append(result)
            print(f"round {r + 1}, cache_features={cache}: {result}", flush=True)
    rows = {}
    for cache, results in runs.items():
        first = [x["epoch_seconds"][0] + x["feature_cache_seconds"] for x in results]
        later = [statistics.mean(x["epoch_seconds"][1:]) for x in results]
        rows[cache] = {
            "epoch_1_seconds": statistics.median(first),
            "later_epoch_seconds": statistics.median(later),
            "feature_cache_seconds": statistics.median(x["feature_cache_seconds"] for x in results),
            "accuracy": [x["accuracy"] for x in results],
            "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in results),
        }
    speedups = [
        statistics.mean(a["epoch_seconds"][1:]) / statistics.mean(b["epoch_seconds"][1:])
        for a, b in zip(runs["false"], runs["true"])
    ]
    out = {
        "cpu_flags": common.cpu_flags(),
        "command": " ".join(sys.argv),
        "rows": rows,
        "later_epoch_speedup_per_round": speedups,
        "rounds": runs,
    }
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"\nCPU flags: {' '.join(out['cpu_flags'])}")
    print("| cache_features | epoch 1 (s) | of it, features (s) | epochs 2+ (s each) ", end="")
    print("| accuracy | peak RSS |")
    print("|---|---|---|---|---|---|")
    for cache, row in rows.items():
        accuracy = ", ".join(f"{a:.4f}" for a in row["accuracy"])
        print(
            f"| {cache} | {row['epoch_1_seconds']:.1f} | {row['feature_cache_seconds']:.1f} "
            f"| {row['later_epoch_seconds']:.2f} | {accuracy} | {row['peak_rss_mb']:.0f} MB |"
        )
    print(f"epochs 2+: {', '.join(f'{s:.1f}x' for s in speedups)} faster cached (per round)")


if __name__ == "__main__":
    app.run(main)
