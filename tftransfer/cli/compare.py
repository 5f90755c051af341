"""`tftransfer compare`: a grid of transfer strategies x data sizes x seeds."""

from absl import flags

from tftransfer.cli import common_flags, results
from tftransfer.cli.common_flags import FLAGS


def define_flags():
    common_flags.config_flags()
    common_flags.runtime_flags()
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
    flags.DEFINE_bool(
        "cell_processes",
        True,
        "Train each cell in its own process: memory stays flat across the grid and each "
        "cell's peak memory is its own (a few seconds of start-up per cell).",
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


def run(argv):
    del argv
    from tftransfer import compare

    params = results.load_params(FLAGS.config_file, FLAGS.params_override)
    comparison = compare.Comparison(
        params,
        FLAGS.output_dir,
        FLAGS.strategies,
        FLAGS.train_sizes,
        FLAGS.seeds,
        FLAGS.split,
        compare.parse_strategy_overrides(FLAGS.strategy_override),
        FLAGS.min_steps,
        cell_processes=FLAGS.cell_processes,
        imports=FLAGS["import"].value,
    )
    if comparison.run() is None:
        return  # some cells are still being trained by another worker
    with open(f"{FLAGS.output_dir}/compare.md", encoding="utf-8") as f:
        print(f.read())
    print(f"Reports written to {FLAGS.output_dir}: compare.md, compare.json, learning_curves.png")
