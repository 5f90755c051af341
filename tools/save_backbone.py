"""Writes a trained run's backbone (its best checkpoint) as a keras-hub preset folder.

A student for distillation starts from its fine-tuned teacher's blocks, as
DistilBERT started from BERT's (Sanh et al., 2019): save the teacher's
backbone, then name it as the student's `backbone.spec` with
`backbone.keep_layers`:

    python tools/save_backbone.py --model_dir=runs/sst2_full --output=runs/sst2_full_backbone
    tftransfer train ... \
      --params_override=backbone.spec=runs/sst2_full_backbone,backbone.keep_layers=3

Only the backbone is written (with its tokenizer and the options keras-hub's
preset does not record); the task's head is not.
"""

from absl import app, flags

flags.DEFINE_string("model_dir", "", "The trained run.")
flags.DEFINE_string("output", "", "The preset folder to write (must not exist).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint.")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.model_dir or not FLAGS.output:
        raise app.UsageError("give --model_dir and --output")
    from tftransfer import backbones, loaded_run

    loaded = loaded_run.LoadedRun(FLAGS.model_dir, FLAGS.checkpoint)
    backbones.save_preset(loaded.backbone, loaded.task.tokenizer, FLAGS.output)
    print(f"wrote {FLAGS.output} from {loaded.checkpoint_path}")


if __name__ == "__main__":
    app.run(main)
