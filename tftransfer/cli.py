"""The `tftransfer` command: train | evaluate | export | predict | generate | compare.

Each command defines only its own absl flags, so `tftransfer <command> --help`
explains exactly the flags that command takes.

Example:

```shell
tftransfer train --config_file=configs/demo_goemotions_sentiment.yaml --model_dir=runs/demo
tftransfer evaluate --model_dir=runs/demo
tftransfer export --model_dir=runs/demo --export_dir=runs/demo/export
echo "what a lovely day" | tftransfer predict --model_dir=runs/demo
echo "To be, or not" | tftransfer generate --model_dir=runs/shakespeare --max_new_tokens=32
tftransfer compare --config_file=configs/trec_minilm.yaml --output_dir=runs/trec_compare \
  --strategies=full,frozen,lora,llrd,scratch --train_sizes=100,1000,all --seeds=3
```
"""

import codecs
import json
import math
import os
import sys

from absl import app, flags, logging

import tftransfer

COMMANDS = {
    "train": "fine-tune a backbone on a task described by config files",
    "evaluate": "compute the task's metrics for a trained run",
    "export": "write a TF Serving SavedModel that takes raw text",
    "predict": "predict for texts from a file or stdin; JSONL out",
    "generate": "continue prompts with a causal-LM run or export; JSONL out",
    "compare": "train a grid of transfer strategies x data sizes x seeds; tables and plot",
}
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


def _load_params(config_files, params_override):
    from tftransfer import configs

    params = configs.load(config_files, params_override)
    configs.override(params, runtime_overrides(), "command-line flags")
    configs.validate(params)
    return params


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


def run_train(argv):
    del argv
    import tensorflow as tf

    from tftransfer import experiment
    from tftransfer.training import overwrite

    params = _load_params(FLAGS.config_file, FLAGS.params_override)
    pretrain = None
    if FLAGS.pretrain_config_file:
        pretrain = _load_params(FLAGS.pretrain_config_file, FLAGS.pretrain_params_override)
    if FLAGS.overwrite and tf.io.gfile.isdir(FLAGS.model_dir):
        overwrite.check(params, FLAGS.model_dir)
        if pretrain is not None:
            overwrite.check_inputs(pretrain)
        experiment.clear_run(FLAGS.model_dir)
    if pretrain is not None:
        preset = experiment.pretrain_then(pretrain, params, FLAGS.model_dir)
        print(f"Fine-tuning from the pretrained backbone {preset}.", flush=True)
    metrics = experiment.train(params, FLAGS.model_dir)
    if metrics:
        print(_summary(metrics))
    print(f"Run written to {FLAGS.model_dir}")


def run_evaluate(argv):
    del argv
    from tftransfer import experiment

    metrics = experiment.evaluate(FLAGS.model_dir, FLAGS.split, FLAGS.input, FLAGS.checkpoint)
    print(_summary(metrics))
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))


def run_export(argv):
    del argv
    from tftransfer import export

    path = export.export_run(
        FLAGS.model_dir, FLAGS.export_dir, FLAGS.version, FLAGS.checkpoint, FLAGS.mixed_precision
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


def read_records(path, encoding="utf-8"):
    """Yields the texts to predict, line by line: plain lines or JSONL objects."""
    from tftransfer.data import readers

    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    with stream:
        # Lines are decoded one by one, so a bad byte is reported with its line.
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise readers.DataError(
                    f"{path}:{number}: not {encoding} text (byte {raw[e.start]:#04x} at "
                    f"column {e.start + 1}); give the file's encoding, e.g. --encoding=latin-1"
                ) from None
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                record = readers.json_object(f"{path}:{number}", line)
                for key in ("text", "text_pair", "prompt", "question", "context"):
                    value = record.get(key)
                    if isinstance(value, str) and not value.strip():
                        # As in training data: an empty field is a mistake in the file.
                        raise readers.DataError(f"{path}:{number}: field `{key}` is empty")
                yield record
            else:
                yield {"text": line}


def check_output(output, source):
    """Refuses an `--output` that is the `--input` file: opening it would empty it first."""
    from tftransfer.data.readers import DataError

    if "-" in (output, source) or not (os.path.exists(output) and os.path.exists(source)):
        return
    if os.path.samefile(output, source):
        raise DataError(
            f"--output={output} is the input file: writing it would empty it before it is "
            "read; give another --output"
        )


def write_jsonl(path, results):
    """One JSON object per line to `path` (`-`: stdout), flushed as they come."""
    out = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")
    with out:
        for result in results:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()


def run_predict(argv):
    del argv
    from tftransfer import predict

    if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
        raise app.UsageError("give exactly one of --model_dir and --saved_model")
    check_output(FLAGS.output, FLAGS.input)
    records = read_records(FLAGS.input, FLAGS.encoding)
    if FLAGS.saved_model:
        results = predict.with_saved_model(
            FLAGS.saved_model, records, FLAGS.batch_size, stream=True
        )
    else:
        results = predict.with_checkpoint(
            FLAGS.model_dir, records, FLAGS.checkpoint, FLAGS.batch_size, stream=True
        )
    write_jsonl(FLAGS.output, results)


def read_prompts(path, encoding="utf-8"):
    """Prompts from plain lines or JSONL objects with `prompt`."""
    from tftransfer.data.readers import DataError

    prompts = []
    for number, record in enumerate(read_records(path, encoding), start=1):
        prompt = record.get("prompt", record.get("text"))
        if not isinstance(prompt, str):
            raise DataError(f"{path}: prompt {number} needs a text field `prompt`")
        prompts.append(prompt)
    return prompts


def run_generate(argv):
    del argv
    from tftransfer import generation

    if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
        raise app.UsageError("give exactly one of --model_dir and --saved_model")
    check_output(FLAGS.output, FLAGS.input)
    prompts = read_prompts(FLAGS.input, FLAGS.encoding)
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
    write_jsonl(FLAGS.output, results)


def run_compare(argv):
    del argv
    from tftransfer import compare

    params = _load_params(FLAGS.config_file, FLAGS.params_override)
    comparison = compare.Comparison(
        params,
        FLAGS.output_dir,
        FLAGS.strategies,
        FLAGS.train_sizes,
        FLAGS.seeds,
        FLAGS.split,
        compare.parse_strategy_overrides(FLAGS.strategy_override),
        FLAGS.min_steps,
    )
    if comparison.run() is None:
        return  # some cells are still being trained by another worker
    with open(f"{FLAGS.output_dir}/compare.md", encoding="utf-8") as f:
        print(f.read())
    print(f"Reports written to {FLAGS.output_dir}: compare.md, compare.json, learning_curves.png")


RUNNERS = {
    "train": run_train,
    "evaluate": run_evaluate,
    "export": run_export,
    "predict": run_predict,
    "generate": run_generate,
    "compare": run_compare,
}


def _summary(metrics):
    keys = ("examples", "sentences", "questions", "accuracy", "macro_f1", "exact_match")
    keys += ("precision", "recall", "f1")
    keys += ("tokens", "nll", "perplexity")
    keys += ("micro_f1", "tuned_macro_f1", "pearson", "spearman", "mse", "mae")
    keys = [k for k in keys if k in metrics]
    return "Evaluation: " + ", ".join(
        f"{k}={metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
        for k in keys
    )


#: set to 1 for what --verbose shows (e.g. when the flags cannot be changed).
VERBOSE_ENV = "TFTRANSFER_VERBOSE"


def _user_errors():
    """Exceptions that mean "fix your input", not "tftransfer has a bug"."""
    import tensorflow as tf

    from tftransfer import backbones, configs, generation, gguf_converter
    from tftransfer.data import readers, tag_schemes
    from tftransfer.training import distribute, run_lock, trainer

    return (
        configs.ConfigError,
        generation.GenerationError,
        readers.DataError,
        tag_schemes.TagError,
        backbones.BackboneError,
        gguf_converter.ConversionError,
        run_lock.RunLockedError,
        trainer.CheckpointError,
        trainer.WorkerLostError,
        distribute.DistributeError,
        # A missing file or SavedModel, a full disk, a folder that is a file:
        # nothing to debug.
        OSError,
        tf.errors.NotFoundError,
        tf.errors.PermissionDeniedError,
    )


def _verbose(argv):
    flag = any(a in ("--verbose", "--verbose=true", "--verbose=1") for a in argv)
    return flag or os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false")


def usage():
    lines = ["usage: tftransfer <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    lines += ["", "`tftransfer <command> --help` lists the flags of a command."]
    return "\n".join(lines)


def _fail(command, message, status=2):
    """Ends the command with `message` on one line of stderr."""
    print(f"tftransfer {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(status)


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(
            usage(),
            file=sys.stderr
            if len(argv) >= 2 and argv[1] not in ("-h", "--help", "help")
            else sys.stdout,
        )
        sys.exit(0 if len(argv) >= 2 and argv[1] in ("-h", "--help", "help") else 2)
    # The flags are defined per command; forgetting them afterwards lets a
    # process (a test, a notebook) call `main` again for another command.
    before = set(FLAGS)
    try:
        _main(argv[1], argv)
    finally:
        _forget_flags(before)


def _forget_flags(keep):
    for name in set(FLAGS) - keep:
        if name in FLAGS:  # a short name went with its long one
            delattr(FLAGS, name)
    FLAGS.unparse_flags()


def command_flags(command):
    """`{name: absl Flag}` that `command` defines (its parser holds bounds and choices)."""
    before = set(FLAGS)
    DEFINERS[command]()
    try:
        return {name: FLAGS[name] for name in set(FLAGS) - before}
    finally:
        _forget_flags(before)


def _main(command, argv):
    verbose = _verbose(argv)
    if tftransfer.USER_TF_LOG_LEVEL is None:
        # TensorFlow's C++ start-up lines (CUDA probing on a machine without a
        # GPU, oneDNN notes) are logged at ERROR level, so only level 3 hides
        # them; it must be set before TensorFlow is imported. GPUs are still
        # used when present; an explicit TF_CPP_MIN_LOG_LEVEL is respected.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    flags.DEFINE_boolean(
        "verbose",
        False,
        f"Show the traceback of input errors and TensorFlow's start-up log (also {VERBOSE_ENV}=1).",
    )
    DEFINERS[command]()
    if any(a in ("-h", "--help", "--helpshort", "-?") for a in argv[2:]):
        # absl's --help lists only flags of the `__main__` module, which for a
        # console script is the generated wrapper, so print this command's own.
        print(f"usage: tftransfer {command} [--flags]\n\n{COMMANDS[command]}.\n")
        print(FLAGS.module_help(__name__))
        sys.exit(0)
    app_argv = [f"{argv[0]} {command}"] + argv[2:]
    try:
        # absl would report a bad flag in its own format with status 1.
        FLAGS(app_argv)
    except flags.Error as e:
        _fail(command, f"{e}; `tftransfer {command} --help` lists the flags")
    runner = RUNNERS[command]

    def run(args):
        # TF's savers log at INFO for every checkpoint; keep the progress bar
        # readable unless the user asked for a verbosity.
        if not FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        if len(args) > 1:
            _fail(command, f"unexpected argument {args[1]!r}; flags are written --name=value")
        try:
            runner(args)
        except KeyboardInterrupt:
            again = " (run the same command to resume from the last checkpoint)"
            print(
                f"tftransfer {command}: interrupted{again if command == 'train' else ''}",
                file=sys.stderr,
            )
            sys.exit(130)
        except app.UsageError as e:
            _fail(command, e)
        except Exception as e:
            if verbose or not isinstance(e, _user_errors()):
                raise
            # The message names the file, line and key; a traceback would
            # bury it under 30 lines of tftransfer's internals.
            _fail(command, e)

    app.run(run, argv=app_argv)


if __name__ == "__main__":
    main()
