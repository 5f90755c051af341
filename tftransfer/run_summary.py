"""What a run records about itself: `params.yaml`'s header and `run_summary.json`.

The header says which transfer strategy ran and how much of the model it
trained; the summary adds step time, peak memory and the final metrics, for
`compare` and for a person reading the folder.
"""

import numpy as np
from absl import logging

from tftransfer import configs, fileio
from tftransfer.run_dir import RunDir
from tftransfer.training import peak_memory


def parameter_counts(run):
    """`(trained, total)`: weights the strategy trains at some step, and all weights."""
    total = sum(int(np.prod(v.shape)) for v in run.model.weights if v.dtype != "string")
    trained = {id(v): v for v in run.model.trainable_variables}
    return sum(int(np.prod(v.shape)) for v in trained.values()), total


def save_params(run, model_dir):
    """Writes `params.yaml`, headed by the strategy and how much of the model it trains."""
    trained, total = parameter_counts(run)
    configs.save(
        run.params,
        RunDir(model_dir).params,
        [
            f"transfer.strategy {run.params.transfer.strategy}: {trained:,} of {total:,} "
            f"parameters trained ({100.0 * trained / max(total, 1):.2f}%)",
            f"data.packing: {run.packing_note or 'off'}",
            f"runtime.mixed_precision: {run.precision_note}",
        ],
    )


def write(run, model_dir, trainer, metrics):
    """`run_summary.json`: strategy, trained parameters, step time, peak memory, result."""
    trained, total = parameter_counts(run)
    # The first step of each shape traces the graph; the median skips those.
    times = sorted(trainer.step_seconds)
    summary = {
        "strategy": run.params.transfer.strategy,
        "trained_parameters": trained,
        "total_parameters": total,
        "packed": run.packing,
        "compute_dtype": run.compute_dtype,
        "steps_run": len(times),
        "median_step_seconds": times[len(times) // 2] if times else None,
        # Training steps only (no evaluation, no checkpoints), this process's epochs.
        "epoch_seconds": {str(k): round(v, 3) for k, v in sorted(trainer.epoch_seconds.items())},
        "peak_rss_mb": peak_memory.current_peak_mb(),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }
    if run.feature_cache is not None:
        summary["feature_cache_seconds"] = round(run.feature_cache.seconds, 3)
    fileio.write_json(summary, RunDir(model_dir).summary)
    logging.info(
        f"{summary['strategy']}: {trained:,} of {total:,} parameters trained; "
        + (f"median step {summary['median_step_seconds']:.3f} s; " if times else "")
        + f"peak memory {summary['peak_rss_mb']:.0f} MB."
    )
    return summary
