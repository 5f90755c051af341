"""One worker of a multi-worker test run: trains, then saves its final weights.

Usage: python multi_worker_driver.py <config.yaml> <model_dir> <weights.npz>
(the cluster and this worker's task come from TF_CONFIG). The weights file
lets the test compare what each worker ended with: the non-chief worker
keeps no checkpoint of its own.
"""

import logging
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tftransfer import configs, experiment  # noqa: E402


def main(config_file, model_dir, weights_path):
    # The library logs through absl (the replica count, resuming); a script
    # that is not an absl app shows INFO messages only when asked to.
    logging.basicConfig(level=logging.INFO)
    fit = experiment.fit

    def fit_and_save(run, directory):
        result = fit(run, directory)
        np.savez(weights_path, *[w.numpy() for w in run.model.weights])
        return result

    experiment.fit = fit_and_save
    experiment.train(configs.load([config_file]), model_dir)


if __name__ == "__main__":
    main(*sys.argv[1:])
