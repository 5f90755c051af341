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

import importlib
import logging as std_logging
import os
import sys

from absl import app, flags, logging

import tftransfer
from tftransfer.cli import common_flags
from tftransfer.cli.common_flags import FLAGS, VERBOSE_ENV

COMMANDS = {
    "train": "fine-tune a backbone on a task described by config files",
    "evaluate": "compute the task's metrics for a trained run",
    "export": "write a TF Serving SavedModel that takes raw text",
    "predict": "predict for texts from a file or stdin; JSONL out",
    "generate": "continue prompts with a causal-LM run or export; JSONL out",
    "compare": "train a grid of transfer strategies x data sizes x seeds; tables and plot",
}


def _user_errors():
    """Exceptions that mean "fix your input", not "tftransfer has a bug"."""
    import tensorflow as tf

    from tftransfer import backbones, configs, generation
    from tftransfer.backbones import gguf_converter
    from tftransfer.data import readers, tag_schemes
    from tftransfer.training import checkpoints, distribute, run_lock, trainer

    return (
        configs.ConfigError,
        generation.GenerationError,
        readers.DataError,
        tag_schemes.TagError,
        backbones.BackboneError,
        gguf_converter.ConversionError,
        run_lock.RunLockedError,
        checkpoints.CheckpointError,
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


class _PlainFormatter(std_logging.Formatter):
    """Library messages as a user reads them: info bare, warnings and errors labelled.

    absl's own format (level, date, thread, file:line) stays for `--verbosity`.
    """

    def format(self, record):
        text = record.getMessage()
        if record.levelno >= std_logging.WARNING:
            text = f"{record.levelname.capitalize()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _not_tensorflow_info(record):
    # TensorFlow's checkpoint code logs through absl too ("Sharding callback
    # duration" at every save), at INFO, the level the library's own lines
    # need; its warnings and errors still show.
    parts = record.pathname.split(os.sep)
    return record.levelno >= std_logging.WARNING or not ("tensorflow" in parts or "keras" in parts)


def _plain_logs():
    # The library logs through absl (info: resuming, thresholds tuned, ...);
    # TensorFlow's own Python logger says INFO for every checkpoint it writes,
    # which would bury those lines and the progress bar.
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    handler = logging.get_absl_handler()
    handler.setFormatter(_PlainFormatter())
    handler.addFilter(_not_tensorflow_info)


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
    # Parsing the flags sets absl's verbosity (and so the levels of the
    # `absl` and root loggers); a later call or the caller's own logging
    # gets them back as they were.
    levels = {name: std_logging.getLogger(name).level for name in ("", "absl", "tensorflow")}
    try:
        _main(argv[1], argv)
    finally:
        common_flags.forget_flags(before)
        for name, level in levels.items():
            std_logging.getLogger(name).setLevel(level)
        logging.get_absl_handler().removeFilter(_not_tensorflow_info)


def _main(command, argv):
    verbose = _verbose(argv)
    if tftransfer.USER_TF_LOG_LEVEL is None:
        # TensorFlow's C++ start-up lines (CUDA probing on a machine without a
        # GPU, oneDNN notes) are logged at ERROR level, so only level 3 hides
        # them; it must be set before TensorFlow is imported. GPUs are still
        # used when present; an explicit TF_CPP_MIN_LOG_LEVEL is respected.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    common_flags.define(command)
    if any(a in ("-h", "--help", "--helpshort", "-?") for a in argv[2:]):
        # absl's --help lists only flags of the `__main__` module, which for a
        # console script is the generated wrapper, so print this command's own.
        print(f"usage: tftransfer {command} [--flags]\n\n{COMMANDS[command]}.\n")
        for module in (f"tftransfer.cli.{command}", common_flags.__name__):
            print(FLAGS.module_help(module))
        sys.exit(0)
    app_argv = [f"{argv[0]} {command}"] + argv[2:]
    try:
        # absl would report a bad flag in its own format with status 1.
        FLAGS(app_argv)
    except flags.Error as e:
        _fail(command, f"{e}; `tftransfer {command} --help` lists the flags")
    runner = importlib.import_module(f"tftransfer.cli.{command}").run

    def run(args):
        if not FLAGS["verbosity"].present:
            _plain_logs()
        if len(args) > 1:
            _fail(command, f"unexpected argument {args[1]!r}; flags are written --name=value")
        for module in FLAGS["import"].value:
            try:
                importlib.import_module(module)
            except ImportError as e:
                if verbose:
                    raise
                _fail(command, f"--import={module}: {e}")
        try:
            runner(args)
        except KeyboardInterrupt:
            again = " (run the same command to resume from the last checkpoint)"
            print(
                f"tftransfer {command}: interrupted{again if command == 'train' else ''}",
                file=sys.stderr,
            )
            sys.exit(130)
        except Exception as e:
            if verbose or not isinstance(e, _user_errors()):
                raise
            # The message names the file, line and key; a traceback would
            # bury it under 30 lines of tftransfer's internals.
            _fail(command, e)

    app.run(run, argv=app_argv)


if __name__ == "__main__":
    main()
