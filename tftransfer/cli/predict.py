"""`tftransfer predict`: predict for texts from a file or stdin; JSONL out."""

from absl import flags

from tftransfer.cli import common_flags, records
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.source_flags(
        "Predict with an exported SavedModel version folder instead of --model_dir."
    )
    flags.DEFINE_string(
        "input",
        "-",
        "Texts to predict: a text file with one text per line, or a .jsonl "
        "file of objects with `text` (and `text_pair` for pair tasks; or, for "
        "NER, `tokens`: a list of pre-split tokens to tag); `-` reads stdin "
        "(JSONL lines are recognised by a leading `{`). A causal-LM run scores "
        "each text (mean_log_likelihood, token_count); `generate` continues them.",
    )
    flags.DEFINE_string("output", "-", "Where to write JSONL results; `-` is stdout.")
    flags.DEFINE_integer("batch_size", 64, "Texts read and predicted per batch.", lower_bound=1)
    common_flags.encoding_flag()
    common_flags.checkpoint_flag()


def run(argv):
    del argv
    from tftransfer import predict

    records.check_output(FLAGS.output, FLAGS.input)
    inputs = records.read_records(FLAGS.input, FLAGS.encoding)
    if FLAGS.saved_model:
        results = predict.with_saved_model(FLAGS.saved_model, inputs, FLAGS.batch_size, stream=True)
    else:
        results = predict.with_checkpoint(
            FLAGS.model_dir,
            inputs,
            FLAGS.checkpoint,
            FLAGS.batch_size,
            stream=True,
        )
    records.write_jsonl(FLAGS.output, results)
