"""The flags of each `tftransfer` command, with their declared ranges.

Each command defines only its own flags (`DEFINERS[command]()`), so
`tftransfer <command> --help` lists exactly what it takes. A number flag
declares its bounds (absl's `lower_bound`/`upper_bound`, or a validator for
floats, which NaN would pass), an enumerated one its choices, so a wrong
value is refused when the flags are parsed, before anything runs.

Example:

>>> from tftransfer import cli_flags
>>> cli_flags.command_flags("generate")["top_k"].parser.lower_bound
0
"""

import codecs
import math

from absl import flags

FLAGS = flags.FLAGS


def _model_dir_flag(required=True):
    flags.DEFINE_string(
        "model_dir",
        None,
        "Run folder: checkpoints, params.yaml, metrics, TensorBoard summaries.",
        required=required,
    )


def _encoding_flag():
    flags.DEFINE_string("encoding", "utf-8", "Text encoding of --input (e.g. latin-1).")
    flags.register_validator("encoding", _known_codec)


def _known_codec(name):
    try:
        codecs.lookup(name)
    except LookupError:
        raise flags.ValidationError(
            f"unknown text encoding {name!r} (e.g. utf-8, latin-1, cp1252)"
        ) from None
    return True


def _finite(name, low=None, high=None, above=None):
    """Validates float flag `name`: a finite number within the bounds, when given."""

    def check(value):
        if value is None:
            return True
        if not math.isfinite(value):
            raise flags.ValidationError(f"must be a finite number, got {value}")
        if (low is not None and value < low) or (above is not None and value <= above):
            raise flags.ValidationError(
                f"must be {'>= ' + str(low) if low is not None else '> ' + str(above)}, got {value}"
            )
        if high is not None and value > high:
            raise flags.ValidationError(f"must be <= {high}, got {value}")
        return True

    flags.register_validator(name, check)


def _checkpoint_flag():
    flags.DEFINE_enum(
        "checkpoint",
        "best",
        ["best", "latest"],
        "Which checkpoint to use: the best on validation (falls back to the "
        "latest when there was no validation data) or the latest.",
    )


def _config_flags():
    flags.DEFINE_multi_string(
        "config_file",
        [],
        "YAML experiment config; repeat the flag to layer several, later files "
        "override earlier ones.",
    )
    flags.DEFINE_multi_string(
        "params_override",
        [],
        "Overrides applied last, as `a.b=1,c.d=x` or a YAML/JSON mapping, e.g. "
        "`trainer.epochs=1,data.train.path=/data/train.tsv`; repeat the flag to "
        "apply several in order. Unknown keys are an error.",
    )


#: flags for where and how training runs: `flag -> config key`. Given flags
#: win over the config files and --params_override (Model Garden's order).
RUNTIME_FLAGS = {
    "distribution_strategy": "runtime.distribution_strategy",
    "tpu": "runtime.tpu",
    "num_gpus": "runtime.num_gpus",
    "all_reduce_alg": "runtime.all_reduce_alg",
    "mixed_precision": "runtime.mixed_precision",
    "jit_compile": "trainer.jit_compile",
    "steps_per_execution": "trainer.steps_per_execution",
}


def _runtime_flags():
    flags.DEFINE_enum(
        "distribution_strategy",
        None,
        ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
        "tf.distribute strategy (runtime.distribution_strategy). multi_worker_mirrored reads "
        "the cluster from TF_CONFIG; batch sizes are global.",
    )
    flags.DEFINE_string(
        "tpu", None, "TPU to use: `local` on a TPU VM or Colab, else its name or grpc:// address."
    )
    flags.DEFINE_integer("num_gpus", None, "GPUs for one_device/mirrored (0 = CPU).", lower_bound=0)
    flags.DEFINE_enum(
        "all_reduce_alg",
        None,
        ["nccl", "hierarchical_copy", "ring"],
        "All-reduce: nccl or hierarchical_copy (mirrored), ring or nccl (multi-worker).",
    )
    flags.DEFINE_enum(
        "mixed_precision",
        None,
        ["float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"],
        "Compute type of the layers; variables, logits and loss stay float32 (bfloat16: TPUs, "
        "recent GPUs, CPUs with AVX512_BF16/AMX; float16: GPUs, with loss scaling).",
    )
    flags.DEFINE_boolean(
        "jit_compile",
        None,
        "Compile forward and backward with XLA (default: on for GPUs, off for CPUs; TPUs always).",
    )
    flags.DEFINE_integer(
        "steps_per_execution",
        None,
        "Optimizer steps per compiled call (100s on TPUs).",
        lower_bound=1,
    )


def runtime_overrides():
    """The config overrides of the runtime flags given on the command line."""
    out = {}
    for flag, key in RUNTIME_FLAGS.items():
        value = FLAGS[flag].value
        if value is not None:
            section, name = key.split(".")
            out.setdefault(section, {})[name] = value
    return out


def define_train_flags():
    _config_flags()
    _model_dir_flag()
    _runtime_flags()
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


def define_compare_flags():
    _config_flags()
    _runtime_flags()
    flags.DEFINE_string("output_dir", None, "Folder for the cells and reports.", required=True)
    flags.DEFINE_list(
        "strategies", ["full", "frozen", "lora", "llrd", "scratch"], "Transfer strategies."
    )
    flags.register_validator(
        "strategies", bool, message="give at least one strategy, e.g. --strategies=full,lora"
    )
    flags.DEFINE_list(
        "train_sizes", ["100", "1000", "all"], "Labelled training examples per cell (nested)."
    )
    flags.register_validator("train_sizes", _train_sizes)
    flags.DEFINE_integer(
        "seeds",
        3,
        "Runs per strategy and size (seeds trainer.seed + 0, 1, ...).",
        lower_bound=1,
    )
    flags.DEFINE_enum(
        "split", "validation", ["validation", "test"], "The split every cell is scored on."
    )
    flags.DEFINE_multi_string(
        "strategy_override",
        [],
        "Overrides for one strategy, `<strategy>:a.b=1,c.d=2` (repeatable), e.g. "
        "`scratch:trainer.learning_rate=5e-4`.",
    )
    flags.DEFINE_integer(
        "min_steps",
        0,
        "Cells whose trainer.epochs over their subset make fewer optimizer steps "
        "train for this many (trainer.train_steps) instead; 0 = off.",
        lower_bound=0,
    )


def _train_sizes(values):
    if not values:
        raise flags.ValidationError("give at least one size, e.g. --train_sizes=100,all")
    for value in values:
        if value != "all" and not (value.isdigit() and int(value) > 0):
            raise flags.ValidationError(
                f"each size is a positive whole number or `all`, got {value!r}"
            )
    return True


def define_evaluate_flags():
    _model_dir_flag()
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
    _checkpoint_flag()


def define_export_flags():
    _model_dir_flag()
    flags.DEFINE_string(
        "export_dir",
        "",
        "TF Serving model base folder; the SavedModel goes to "
        "<export_dir>/<version>/. Default: export.export_dir of the config, "
        "else <model_dir>/export.",
    )
    flags.DEFINE_integer(
        "version",
        0,
        "Version folder number; 0 = one more than the largest existing.",
        lower_bound=0,
    )
    flags.DEFINE_enum(
        "mixed_precision",
        None,
        ["float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"],
        "Type the served model computes in (default: export.mixed_precision of the run's "
        "config, else float32); outputs stay float32. bfloat16 pays only on CPUs with "
        "AVX512_BF16 or AMX (BENCHMARKS.md).",
    )
    _checkpoint_flag()


def define_predict_flags():
    _model_dir_flag(required=False)
    flags.DEFINE_string(
        "saved_model",
        "",
        "Predict with an exported SavedModel version folder instead of --model_dir.",
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
    _encoding_flag()
    _checkpoint_flag()


def define_generate_flags():
    _model_dir_flag(required=False)
    flags.DEFINE_string(
        "saved_model", "", "Generate with an exported SavedModel version folder instead."
    )
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
    _finite("temperature", low=0.0)
    flags.DEFINE_integer(
        "top_k", None, "Sample among the k most likely tokens (0 = all).", lower_bound=0
    )
    flags.DEFINE_float("top_p", None, "Sample among the most likely tokens summing to p.")
    _finite("top_p", above=0.0, high=1.0)
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
    _encoding_flag()
    _checkpoint_flag()


DEFINERS = {
    "train": define_train_flags,
    "evaluate": define_evaluate_flags,
    "export": define_export_flags,
    "predict": define_predict_flags,
    "generate": define_generate_flags,
    "compare": define_compare_flags,
}


#: set to 1 for what --verbose shows (e.g. when the flags cannot be changed).
VERBOSE_ENV = "TFTRANSFER_VERBOSE"


def define(command):
    """Defines `command`'s flags and `--verbose`."""
    flags.DEFINE_boolean(
        "verbose",
        False,
        f"Show the traceback of input errors and TensorFlow's start-up log (also {VERBOSE_ENV}=1).",
    )
    DEFINERS[command]()


def forget_flags(keep):
    """Removes the flags defined since `keep = set(FLAGS)` was taken."""
    for name in set(FLAGS) - keep:
        if name in FLAGS:  # a short name went with its long one
            delattr(FLAGS, name)
    FLAGS.unparse_flags()


def command_flags(command):
    """`{name: absl Flag}` that `command` defines (its parser holds bounds and choices)."""
    before = set(FLAGS)
    define(command)
    try:
        return {name: FLAGS[name] for name in set(FLAGS) - before}
    finally:
        forget_flags(before)
