"""One cell of `tftransfer compare`: trained in this process or in a fresh one.

A process per cell keeps a long grid's memory flat: the models, traced
functions and allocator pools a cell leaves behind go back to the OS when its
process exits. In one process they piled up (about 0.4 GB per MiniLM cell
even after `clear_session`), and each cell's reported peak included them.
The fresh process imports the caller's plugins and logs as the caller does.

Example (in this process; `own_process=True` spawns one):

    metrics = compare_cell.train_cell(params.as_dict(), "runs/cell", examples,
                                      "validation", own_process=False)
"""

import gc
import importlib
import logging as std_logging
import multiprocessing
from concurrent import futures

from absl import logging

from tftransfer import configs, experiment, loaded_run


def train_cell(params_dict, model_dir, examples, split, own_process=True, imports=()):
    """Trains one cell and scores it on `split`; returns the numeric metrics.

    Args:
        params_dict: the cell's config, as `ExperimentConfig.as_dict()`.
        model_dir: the cell's run folder (an interrupted run resumes).
        examples: the cell's training examples.
        split: `validation` or `test`: what the metrics are on.
        own_process: train in a fresh (spawned) process.
        imports: modules the fresh process imports first (plugins).
    """
    if not own_process:
        import keras

        metrics = _train(params_dict, model_dir, examples, split)
        keras.backend.clear_session()
        gc.collect()
        return metrics
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        job = pool.submit(_train, params_dict, model_dir, examples, split, _setup(imports))
        return job.result()


def _setup(imports):
    """What a cell's process needs from this one: plugin modules and how logs look."""
    handler = logging.get_absl_handler()
    return {
        "imports": list(imports),
        "absl_handler": handler in std_logging.root.handlers,
        "formatter": handler.formatter,
        "filters": list(handler.filters),
        # What this process shows, whoever set it (absl's verbosity flag,
        # a caller's logging config, a test's caplog).
        "levels": {name: std_logging.getLogger(name).getEffectiveLevel() for name in ("", "absl")},
    }


def _log_like_parent(setup):
    # A spawned process starts with Python's default logging: without this
    # the cell's lines would lose the CLI's plain format and filters (or,
    # for a library caller with its own basicConfig, be dropped below WARNING).
    if setup["absl_handler"]:
        logging.use_absl_handler()
        handler = logging.get_absl_handler()
        handler.setFormatter(setup["formatter"])
        for log_filter in setup["filters"]:
            handler.addFilter(log_filter)
    else:
        std_logging.basicConfig()
    for name, level in setup["levels"].items():
        std_logging.getLogger(name).setLevel(level)
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)


def _train(params_dict, model_dir, examples, split, setup=None):
    """Trains one cell and scores it on `split`; returns the numeric metrics.

    Runs in the calling process, or (with `setup`) in a fresh one.
    """
    if setup:
        _log_like_parent(setup)
        for module in setup["imports"]:
            importlib.import_module(module)
    params = configs.load([], params_dict)
    metrics = experiment.train(params, model_dir, examples)
    if split != "validation":
        metrics = loaded_run.evaluate(model_dir, split)
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
