"""`tftransfer generate`: continue prompts with a causal-LM run or export; JSONL out."""

from absl import flags

from tftransfer.cli import common_flags, records
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.source_flags("Generate with an exported SavedModel version folder instead.")
    flags.DEFINE_string(
        "input",
        "-",
        "Prompts: a text file with one prompt per line, or JSONL objects with "
        "`prompt`; `-` reads stdin.",
    )
    flags.DEFINE_string("output", "-", "Where to write JSONL results; `-` is stdout.")
    flags.DEFINE_integer(
        "max_new_tokens", None, "New tokens per prompt (default: the config's).", lower_bound=0
    )
    flags.DEFINE_float("temperature", None, "0 = greedy; >0 samples (default: the config's).")
    common_flags.finite("temperature", low=0.0)
    flags.DEFINE_integer(
        "top_k", None, "Sample among the k most likely tokens (0 = all).", lower_bound=0
    )
    flags.DEFINE_float("top_p", None, "Sample among the most likely tokens summing to p.")
    common_flags.finite("top_p", above=0.0, high=1.0)
    flags.DEFINE_integer(
        "seed",
        None,
        "Sampling seed: the same seed gives the same text.",
        lower_bound=0,
        upper_bound=2**63 - 1,
    )
    flags.DEFINE_multi_string("stop", [], "Cut the output at this string (repeatable).")
    flags.DEFINE_bool(
        "chat", False, "Wrap each prompt as a user message with the model's chat template."
    )
    flags.DEFINE_integer("batch_size", 8, "Prompts decoded together.", lower_bound=1)
    common_flags.encoding_flag()
    common_flags.checkpoint_flag()


def run(argv):
    del argv
    from tftransfer import generation

    records.check_output(FLAGS.output, FLAGS.input)
    prompts = records.read_prompts(FLAGS.input, FLAGS.encoding)
    if FLAGS.saved_model:
        generator = generation.Generator.from_saved_model(FLAGS.saved_model)
    else:
        generator = generation.Generator.from_model_dir(FLAGS.model_dir, FLAGS.checkpoint)
    options = generation.Options(
        FLAGS.max_new_tokens,
        FLAGS.temperature,
        FLAGS.top_k,
        FLAGS.top_p,
        FLAGS.seed,
        tuple(FLAGS.stop),
    )
    # Written a batch at a time, as they are generated.
    results = generator.stream(prompts, options, chat=FLAGS.chat, batch_size=FLAGS.batch_size)
    records.write_jsonl(FLAGS.output, results)
