"""`tftransfer train`: fine-tune a backbone on a task described by config files."""

from absl import flags

from tftransfer.cli import common_flags, results
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.config_flags()
    common_flags.model_dir_flag()
    common_flags.runtime_flags()
    flags.DEFINE_multi_string(
        "pretrain_config_file",
        [],
        "Continued pretraining first (a masked_lm, or causal_lm with save_backbone, "
        "config): trained into <model_dir>/pretrain, whose backbone preset the "
        "main run then starts from. Resumes like any run.",
    )
    flags.DEFINE_multi_string(
        "pretrain_params_override", [], "Overrides for the pretraining config (repeatable)."
    )
    flags.DEFINE_boolean(
        "overwrite",
        False,
        "Delete what model_dir holds (checkpoints, metrics, a pretraining stage) and "
        "start over; without it a rerun resumes, and only a compatible config may.",
    )


def run(argv):
    del argv
    import tensorflow as tf

    from tftransfer import experiment
    from tftransfer.training import overwrite

    params = results.load_params(FLAGS.config_file, FLAGS.params_override)
    pretrain = None
    if FLAGS.pretrain_config_file:
        pretrain = results.load_params(FLAGS.pretrain_config_file, FLAGS.pretrain_params_override)
    if FLAGS.overwrite and tf.io.gfile.isdir(FLAGS.model_dir):
        overwrite.check(params, FLAGS.model_dir)
        if pretrain is not None:
            overwrite.check_inputs(pretrain)
        overwrite.clear_folder(FLAGS.model_dir)
    if pretrain is not None:
        preset = experiment.pretrain_then(pretrain, params, FLAGS.model_dir)
        print(f"Fine-tuning from the pretrained backbone {preset}.", flush=True)
    metrics = experiment.train(params, FLAGS.model_dir)
    if metrics:
        print(results.summary(metrics, params.task.type))
    print(f"Run written to {FLAGS.model_dir}")
