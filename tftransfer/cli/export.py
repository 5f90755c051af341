"""`tftransfer export`: write a TF Serving SavedModel that takes raw text."""

from absl import flags

from tftransfer.cli import common_flags
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.model_dir_flag()
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
        ["auto", "float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"],
        "Type the served model computes in (default: export.mixed_precision of the run's "
        "config, else the run's runtime.mixed_precision; auto is decided on this machine); "
        "outputs stay float32. bfloat16 pays only on CPUs with AVX512_BF16 or AMX "
        "(BENCHMARKS.md): name float32 to serve on other CPUs.",
    )
    common_flags.checkpoint_flag()


def run(argv):
    del argv
    from tftransfer import export

    path = export.export_run(
        FLAGS.model_dir,
        FLAGS.export_dir,
        FLAGS.version,
        FLAGS.checkpoint,
        FLAGS.mixed_precision,
    )
    meta = export.read_metadata(path)
    print(f"SavedModel written to {path}")
    for name, signature in meta["signatures"].items():
        print(f"  signature {name}: inputs {signature['inputs']}")
        print(f"    outputs {signature['outputs']}")
    print(
        f"  custom ops {meta['custom_ops']}: load with `import tensorflow_text`; "
        f"TF Serving >= {meta['min_tf_serving_version']}"
    )
