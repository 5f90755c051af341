"""Memory of a long `tftransfer compare` grid: each cell in its own process, or all in one.

Runs the same grid twice, each mode in a fresh process of this tool, and
records per cell: the cell's peak resident memory (`peak_rss_mb` in its
result), the resident memory of the process running the grid after the cell,
and the cell's wall time. Prints a Markdown table per mode and writes JSON.

Usage:
    python tools/benchmark_compare_memory.py --output=runs/compare_memory.json

The default grid is 5 strategies x 2 sizes x 2 seeds = 20 cells of the default
backbone on the bundled GoEmotions sentiment sample, 8 steps each.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags
from benchmarking import common

flags.DEFINE_string("config", "configs/demo_goemotions_sentiment.yaml", "Config of the grid.")
flags.DEFINE_list("strategies", ["full", "frozen", "lora", "llrd", "scratch"], "Strategies.")
flags.DEFINE_list("train_sizes", ["64", "128"], "Training-set sizes.")
flags.DEFINE_integer("seeds", 2, "Seeds per strategy and size.")
flags.DEFINE_integer("train_steps", 8, "Optimizer steps per cell.")
flags.DEFINE_integer("eval_examples", 200, "Validation examples scored per cell.")
flags.DEFINE_list("modes", ["processes", "in_process"], "Which modes, in this order.")
flags.DEFINE_string("output", "runs/compare_memory.json", "Where the JSON goes.")
flags.DEFINE_string("workdir", "runs/compare_memory", "Where the grids are trained.")
flags.DEFINE_string("mode", "", "Internal: run one mode in this process.")
FLAGS = flags.FLAGS


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _run_mode(mode):
    """Trains the grid in this process; returns one record per cell."""
    from tftransfer import compare, configs

    params = configs.load(
        [FLAGS.config],
        {
            "trainer": {"train_steps": FLAGS.train_steps, "eval_every": FLAGS.train_steps},
            "data": {"validation": {"max_examples": FLAGS.eval_examples}},
            "runtime": {"mixed_precision": "float32"},
        },
    )
    grid = compare.Comparison(
        params,
        os.path.join(FLAGS.workdir, mode),
        FLAGS.strategies,
        FLAGS.train_sizes,
        FLAGS.seeds,
        cell_processes=mode == "processes",
    )
    records = []
    for i, cell in enumerate(grid.cells, 1):
        start = time.perf_counter()
        result = grid.run_cell(cell)
        records.append(
            {
                "cell": i,
                "name": cell.name,
                "cell_peak_rss_mb": round(result["peak_rss_mb"]),
                "grid_process_rss_mb": round(_rss_mb()),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    return records


def _table(mode, records):
    lines = [
        f"\n{mode}:\n",
        "| cell | name | cell peak RSS (MB) | grid process RSS after (MB) | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['cell']} | {r['name']} | {r['cell_peak_rss_mb']} | "
            f"{r['grid_process_rss_mb']} | {r['seconds']} |"
        )
    second, last = records[1]["cell_peak_rss_mb"], records[-1]["cell_peak_rss_mb"]
    lines.append(f"\ncell {len(records)} peak / cell 2 peak: {last / second:.3f}")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.mode:
        with open(f"{FLAGS.output}.{FLAGS.mode}", "w", encoding="utf-8") as f:
            json.dump(_run_mode(FLAGS.mode), f)
        return
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    out = {"cpu_flags": common.cpu_flags(), "modes": {}}
    for mode in FLAGS.modes:
        # A fresh process per mode: the in-process grid's growth must not
        # count against the other.
        subprocess.run([sys.executable, __file__, f"--mode={mode}"] + sys.argv[1:], check=True)
        with open(f"{FLAGS.output}.{mode}", encoding="utf-8") as f:
            out["modes"][mode] = json.load(f)
        os.remove(f"{FLAGS.output}.{mode}")
        print(_table(mode, out["modes"][mode]))
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"\nCPU flags: {' '.join(out['cpu_flags'])}; written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
