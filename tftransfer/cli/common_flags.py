"""Flags several commands share, and defining and forgetting a command's flags.

Each command module (`tftransfer/cli/<command>.py`) defines only its own
flags in `define_flags()`, so `tftransfer <command> --help` lists exactly what
it takes. A number flag declares its bounds (absl's `lower_bound` /
`upper_bound`, or a validator for floats, which NaN would pass), an
enumerated one its choices: a wrong value is refused when the flags are
parsed, before anything runs.

Example:

>>> from tftransfer.cli import common_flags
>>> common_flags.command_flags("generate")["top_k"].parser.lower_bound
0
"""

import codecs
import importlib
import math

from absl import flags

FLAGS = flags.FLAGS


def model_dir_flag(required=True):
    flags.DEFINE_string(
        "model_dir",
        None,
        "Run folder: checkpoints, params.yaml, metrics, TensorBoard summaries.",
        required=required,
    )


def source_flags(saved_model_help):
    """`--model_dir` or `--saved_model`: exactly one, checked when the flags are parsed."""
    model_dir_flag(required=False)
    flags.DEFINE_string("saved_model", "", saved_model_help)
    flags.register_multi_flags_validator(
        ["model_dir", "saved_model"],
        lambda values: bool(values["model_dir"]) != bool(values["saved_model"]),
        message="give exactly one of --model_dir and --saved_model",
    )


def encoding_flag():
    flags.DEFINE_string("encoding", "utf-8", "Text encoding of --input (e.g. latin-1).")
    flags.register_validator("encoding", known_codec)


def known_codec(name):
    try:
        codecs.lookup(name)
    except LookupError:
        raise flags.ValidationError(
            f"unknown text encoding {name!r} (e.g. utf-8, latin-1, cp1252)"
        ) from None
    return True


def finite(name, low=None, high=None, above=None):
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


def checkpoint_flag():
    flags.DEFINE_enum(
        "checkpoint",
        "best",
        ["best", "latest"],
        "Which checkpoint to use: the best on validation (falls back to the "
        "latest when there was no validation data) or the latest.",
    )


def config_flags():
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


def runtime_flags():
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
        ["auto", "float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"],
        "Compute type of the layers; variables, logits and loss stay float32. auto (default): "
        "bfloat16 where the device has bf16 units (TPUs, GPUs from Ampere, CPUs with "
        "AVX512_BF16/AMX), else float32; float16: GPUs, with loss scaling.",
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


VERBOSE_ENV = "TFTRANSFER_VERBOSE"


def define(command):
    """Defines `command`'s flags, `--verbose` and `--import`."""
    flags.DEFINE_boolean(
        "verbose",
        False,
        f"Show the traceback of input errors and TensorFlow's start-up log (also {VERBOSE_ENV}=1).",
    )
    flags.DEFINE_multi_string(
        "import",
        [],
        "Python module to import first (repeatable), e.g. one that registers a task of "
        "your own (`tasks.register`); installed packages can name it under the "
        "`tftransfer.tasks` entry point instead.",
    )
    importlib.import_module(f"tftransfer.cli.{command}").define_flags()


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
