"""Test scores of a multi-label run under each way of choosing its decision thresholds.

Scores the run's validation and test splits once, then tunes thresholds on
validation in every way `threshold_tuning` offers (and fixed shrinkage
strengths and floors, for reference) and reports test macro-F1 for each, next
to the oracle (thresholds tuned on test itself).

Usage:
    python tools/compare_thresholds.py --model_dir=runs/goemotions
"""

import json

import numpy as np
from absl import app, flags

flags.DEFINE_string("model_dir", None, "A trained multi-label run.", required=True)
flags.DEFINE_string("checkpoint", "best", "Which checkpoint: best or latest.")
FLAGS = flags.FLAGS


def _probabilities(loaded, split):
    from tftransfer import evaluation, run_setup

    examples = run_setup.read_split(loaded.params, split)
    data_config, forward = run_setup.eval_setup(
        loaded.params, loaded.task, loaded.model, loaded.backbone, loaded.packing()
    )
    batch_size = loaded.params.trainer.eval_batch_size
    dataset = loaded.task.eval_dataset(examples, batch_size, data_config)
    outputs = evaluation.predict_outputs(
        loaded.task, loaded.model, dataset, len(examples), batch_size, forward
    )
    logits = np.stack(outputs).astype(np.float64)
    return loaded.task.encode_labels(examples), 1.0 / (1.0 + np.exp(-logits))


def main(argv):
    del argv
    from sklearn.metrics import f1_score

    from tftransfer import loaded_run
    from tftransfer.metrics import multi_label

    loaded = loaded_run.LoadedRun(FLAGS.model_dir, FLAGS.checkpoint)
    dev_gold, dev = _probabilities(loaded, "validation")
    test_gold, test = _probabilities(loaded, "test")

    def score(thresholds):
        predicted = test >= np.asarray(thresholds)[None, :]
        return round(float(f1_score(test_gold, predicted, average="macro", zero_division=0)), 4)

    own = multi_label.tune_thresholds(dev_gold, dev)
    common = multi_label.tune_thresholds(dev_gold, dev, "global")
    positives = dev_gold.sum(axis=0)
    rows = {
        f"threshold_tuning: {mode}": score(multi_label.tune_thresholds(dev_gold, dev, mode))
        for mode in ("per_label", "shrunk", "global")
    }
    for strength in (2, 5, 20, 50, 200):
        rows[f"fixed shrinkage k={strength}"] = score(
            multi_label._shrink(own, common, positives, strength)
        )
    for floor in (0.02, 0.05, 0.1):
        rows[f"per_label with a floor of {floor}"] = score(np.maximum(own, floor))
    rows["oracle: tuned on test"] = score(multi_label.tune_thresholds(test_gold, test))
    print("| thresholds chosen on validation | test macro-F1 |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.4f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    app.run(main)
