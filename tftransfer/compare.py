"""How well does knowledge transfer? Strategies x training-set sizes x seeds.

`tftransfer compare` trains one run per cell (transfer strategy, number of
labelled training examples, seed) of one config and scores each on the
validation (or test) split. The subsets are nested: the first `n` examples
of one fixed shuffle, so the 100 examples are part of the 1,000. Cells are
model dirs under `<output_dir>/cells/`; a cell with `result.json` is done and
never rerun, an interrupted one resumes from its last checkpoint, so a crash
loses at most part of the running cell. Written to `output_dir`:
`compare.json` (every cell and the aggregates), `compare.md` (mean ± std per
strategy and size, and the gain over `scratch` in points) and
`learning_curves.png` (score against labelled examples, log x axis).

Example:

>>> from tftransfer import compare
>>> compare.parse_sizes(["100", "1000", "all"], available=5452)
[100, 1000, 5452]
>>> compare.subset_indices(10, seed=0)[:3] == compare.subset_indices(10, seed=0)[:3]
True
"""

import dataclasses
import json
import os
import statistics

import matplotlib
from absl import logging

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from tftransfer import (  # noqa: E402
    compare_cell,
    config_files,
    configs,
    experiment,
    fileio,
    run_setup,
    transfer,
)
from tftransfer.run_dir import RunDir
from tftransfer.training import run_lock  # noqa: E402

#: examples shuffle for the nested subsets; independent of the runs' seeds.
SUBSET_SEED = 1234


def parse_sizes(sizes, available):
    """`["100", "all"]` -> `[100, available]`; sizes above `available` are an error."""
    out = []
    for size in sizes:
        n = available if size == "all" else int(size)
        if not 0 < n <= available:
            raise configs.ConfigError(
                f"--train_sizes: {size} is not between 1 and the {available} training examples"
            )
        out.append(n)
    return sorted(set(out))


def subset_indices(count, seed=SUBSET_SEED):
    """One fixed order of `count` examples; a subset of `n` is its first `n`."""
    return np.random.default_rng(seed).permutation(count).tolist()


def subset(examples, indices):
    """The examples at `indices` (any reader's column-wise dataclass)."""
    n = len(examples)
    values = {}
    for field in dataclasses.fields(examples):
        value = getattr(examples, field.name)
        if isinstance(value, list) and len(value) == n:
            value = [value[i] for i in indices]
        values[field.name] = value
    return type(examples)(**values)


def parse_strategy_overrides(items):
    """`["scratch:trainer.learning_rate=5e-4"]` -> `{"scratch": "trainer.learning_rate=5e-4"}`."""
    out = {}
    for item in items:
        strategy, sep, override = item.partition(":")
        if not sep:
            raise configs.ConfigError(
                f"--strategy_override `{item}`: expected <strategy>:<key=value,...>"
            )
        out[strategy] = ",".join(x for x in (out.get(strategy, ""), override) if x)
    return out


@dataclasses.dataclass
class Cell:
    strategy: str
    size: int
    seed: int

    @property
    def name(self):
        return f"{self.strategy}-n{self.size}-seed{self.seed}"


class Comparison:
    """A grid of runs of one config.

    Args:
        params: the base `ExperimentConfig` (its `transfer.strategy` and
            `trainer.seed` are set per cell).
        output_dir: where the cells and the reports go.
        strategies: transfer strategies to compare.
        sizes: training-set sizes (`"all"` allowed).
        seeds: how many seeds per cell (`trainer.seed` + 0, 1, ...).
        split: `validation` or `test`: the split each cell is scored on.
        strategy_overrides: `{strategy: override string}` (e.g. a higher
            learning rate for `scratch` and `lora`).
        min_steps: a cell whose epochs over its subset come to fewer optimizer
            steps trains for this many instead (`trainer.train_steps`; with
            `eval_every` 0, evaluated once, at the end), so the 100-example
            cells are not judged on a dozen updates. 0 = off.
        cell_processes: train each cell in its own process, so memory stays
            flat across the grid and each cell's `peak_rss_mb` is its own
            (a few seconds of start-up per cell). False = all in this one.
        imports: modules a cell's process imports first (plugins that
            register tasks or strategies, as `--import` gives them).
    """

    def __init__(
        self,
        params,
        output_dir,
        strategies,
        sizes,
        seeds=3,
        split="validation",
        strategy_overrides=None,
        min_steps=0,
        cell_processes=True,
        imports=(),
    ):
        self.params = params
        self.cell_processes = cell_processes
        self.imports = list(imports)
        self.output_dir = output_dir
        self.strategies = list(strategies)
        self.split = split
        self.strategy_overrides = strategy_overrides or {}
        self.min_steps = min_steps
        for strategy in self.strategies + list(self.strategy_overrides):
            configs.check_choice("--strategies", strategy, self._known_strategies())
        if not run_setup.has_split(params, split):
            raise configs.ConfigError(f"compare scores on data.{split}, which has no path")
        self.train_examples = run_setup.read_split(params, "train")
        # What a task learns from its training data (the label set above all)
        # comes from all of it, once: a 100-example subset of TREC can lack
        # the rare ABBR class, and the test split would then hold a label the
        # cell's model does not know. prepare_task writes it into the config.
        experiment.prepare_task(params, self.train_examples)
        self.sizes = parse_sizes(sizes, len(self.train_examples))
        self.order = subset_indices(len(self.train_examples))
        self.cells = [
            Cell(strategy, size, params.trainer.seed + i)
            for size in self.sizes
            for strategy in self.strategies
            for i in range(seeds)
        ]

    @staticmethod
    def _known_strategies():
        from tftransfer import transfer

        return sorted(transfer.registered())

    def _cell_dir(self, cell):
        return os.path.join(self.output_dir, "cells", cell.name)

    def _result_path(self, cell):
        return os.path.join(self._cell_dir(cell), "result.json")

    def cell_params(self, cell):
        params = configs.load([], self.params.as_dict())
        configs.override(
            params,
            {"transfer": {"strategy": cell.strategy}, "trainer": {"seed": cell.seed}},
            "compare",
        )
        extra = self.strategy_overrides.get(cell.strategy)
        if extra:
            configs.override(
                params, config_files.parse_override_string(extra), "--strategy_override"
            )
        if transfer.get(params.transfer).uses_teacher and not params.transfer.teacher_cache:
            # One store for the grid: a teacher labels each text once, not once per cell.
            params.transfer.teacher_cache = os.path.join(self.output_dir, "teacher_outputs")
        cfg = params.trainer
        epoch_steps = cfg.epochs * max(1, cell.size // cfg.batch_size)
        if not cfg.train_steps and epoch_steps < self.min_steps:
            cfg.train_steps = self.min_steps
            # Epochs of a few steps each would mean an evaluation every few
            # steps; one at the end scores the last checkpoint instead.
            cfg.eval_every = cfg.eval_every or cfg.train_steps
        configs.validate(params)
        return params

    def run_cell(self, cell):
        """Trains and scores one cell (resuming it if it was interrupted)."""
        model_dir = self._cell_dir(cell)
        params = self.cell_params(cell)
        indices = self.order[: cell.size]
        os.makedirs(model_dir, exist_ok=True)
        fileio.write_json({"train_indices": indices}, RunDir(model_dir).train_subset)
        args = (params.as_dict(), model_dir, subset(self.train_examples, indices), self.split)
        metrics = compare_cell.train_cell(
            *args, own_process=self.cell_processes, imports=self.imports
        )
        with open(RunDir(model_dir).summary, encoding="utf-8") as f:
            summary = json.load(f)
        result = {
            **dataclasses.asdict(cell),
            "split": self.split,
            "train_steps": params.trainer.train_steps or None,
            "metrics": metrics,
            "trained_parameters": summary["trained_parameters"],
            "median_step_seconds": summary["median_step_seconds"],
            "peak_rss_mb": summary["peak_rss_mb"],
        }
        fileio.write_json(result, self._result_path(cell))
        return result

    def run(self):
        """Runs every unfinished cell, then writes the reports; returns the summary."""
        done = [c for c in self.cells if os.path.exists(self._result_path(c))]
        todo = [c for c in self.cells if c not in done]
        logging.info(
            f"{len(self.cells)} cells ({len(done)} done): strategies {', '.join(self.strategies)}"
            f" x sizes {', '.join(map(str, self.sizes))} x seeds; scored on {self.split}."
        )
        progress = tqdm(total=len(self.cells), initial=len(done), unit="cell", desc="compare")
        for cell in todo:
            if os.path.exists(self._result_path(cell)):  # finished by another worker
                progress.update(1)
                continue
            progress.set_postfix_str(cell.name)
            try:
                self.run_cell(cell)
            except run_lock.RunLockedError:
                # Another `compare` on the same output_dir trains this cell:
                # several workers share a grid by skipping each other's cells.
                continue
            progress.update(1)
        progress.close()
        missing = [c.name for c in self.cells if not os.path.exists(self._result_path(c))]
        if missing:
            logging.warning(
                f"{len(missing)} cells are being trained by another process ({', '.join(missing)});"
                " rerun this command when they are done to write the reports."
            )
            return None
        return self.write_reports()

    def results(self):
        out = []
        for cell in self.cells:
            with open(self._result_path(cell), encoding="utf-8") as f:
                out.append(json.load(f))
        return out

    def write_reports(self):
        from tftransfer import tasks

        metric = tasks.get(self.params.task.type).primary_metric
        results = self.results()
        table = {}
        for strategy in self.strategies:
            for size in self.sizes:
                scores = [
                    r["metrics"][metric.name]
                    for r in results
                    if r["strategy"] == strategy and r["size"] == size
                ]
                table.setdefault(strategy, {})[size] = {
                    "mean": statistics.mean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                    "runs": len(scores),
                }
        summary = {
            "metric": metric.name,
            "lower_is_better": metric.lower_is_better,
            "split": self.split,
            "min_steps": self.min_steps,
            "sizes": self.sizes,
            "table": {s: {str(n): v for n, v in row.items()} for s, row in table.items()},
            "cells": results,
        }
        if "scratch" in table:
            summary["gain_over_scratch"] = {
                s: {str(n): table[s][n]["mean"] - table["scratch"][n]["mean"] for n in self.sizes}
                for s in table
                if s != "scratch"
            }
        fileio.write_json(summary, os.path.join(self.output_dir, "compare.json"))
        self._write_markdown(summary, table)
        self._plot(table, metric)
        return summary

    def _write_markdown(self, summary, table):
        percent = summary["metric"] in ("accuracy", "macro_f1", "f1", "exact_match")
        scale = 100.0 if percent else 1.0

        def cell(value):
            return f"{value['mean'] * scale:.2f} ± {value['std'] * scale:.2f}"

        header = "| strategy | " + " | ".join(f"n = {n:,}" for n in self.sizes) + " |"
        lines = [
            f"{summary['metric']} on {summary['split']} (mean ± std over seeds"
            + (", in points" if percent else "")
            + ")",
            "",
            header,
            "|" + "---|" * (len(self.sizes) + 1),
        ]
        for strategy, row in table.items():
            lines.append(f"| {strategy} | " + " | ".join(cell(row[n]) for n in self.sizes) + " |")
        if "gain_over_scratch" in summary:
            lines += ["", "Gain over `scratch`:", "", header, "|" + "---|" * (len(self.sizes) + 1)]
            for strategy, gains in summary["gain_over_scratch"].items():
                lines.append(
                    f"| {strategy} | "
                    + " | ".join(f"{gains[str(n)] * scale:+.2f}" for n in self.sizes)
                    + " |"
                )
        with open(os.path.join(self.output_dir, "compare.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def _plot(self, table, metric):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for strategy, row in table.items():
            ax.errorbar(
                self.sizes,
                [row[n]["mean"] for n in self.sizes],
                yerr=[row[n]["std"] for n in self.sizes],
                marker="o",
                capsize=3,
                label=strategy,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel(f"{metric.name} ({self.split})")
        ax.set_title("learning curves by transfer strategy")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(self.output_dir, "learning_curves.png"), dpi=100)
        plt.close(fig)
