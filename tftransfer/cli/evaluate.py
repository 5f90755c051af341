"""`tftransfer evaluate`: compute the task's metrics for a trained run."""

import json

from absl import flags

from tftransfer.cli import common_flags, results
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.model_dir_flag()
    flags.DEFINE_enum(
        "split",
        "validation",
        ["train", "validation", "test"],
        "Which data split of the run's config to evaluate on.",
    )
    flags.DEFINE_string(
        "input",
        "",
        "Evaluate on this file instead (same format and columns as the split).",
    )
    common_flags.checkpoint_flag()


def run(argv):
    del argv
    from tftransfer import configs, loaded_run

    metrics = loaded_run.evaluate(
        FLAGS.model_dir,
        FLAGS.split,
        FLAGS.input,
        FLAGS.checkpoint,
    )
    print(results.summary(metrics, configs.from_model_dir(FLAGS.model_dir).task.type))
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
