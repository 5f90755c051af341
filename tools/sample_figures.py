"""Every task's figures on the bundled samples, to the last digit.

A refactor that claims "behaviour unchanged" runs this before and after and
diffs the two outputs: each case trains a few steps from the offline
backbones on a bundled sample (fixed seed, float32, op determinism), evaluates
on the sample's validation split, and the evaluation's metrics are printed as
JSON with every float as Python's `repr` (the shortest string that round-trips,
so equal output means equal float64 values).

Example:

    python tools/sample_figures.py --output=/tmp/before.json
    # ... change the code ...
    python tools/sample_figures.py --output=/tmp/after.json
    diff /tmp/before.json /tmp/after.json

Takes about 5 minutes on 2 CPU cores. Run the two sides on the same machine:
oneDNN picks kernels by CPU type, so the last digits differ between CPU types.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

_OUTPUT = flags.DEFINE_string("output", "-", "where to write the JSON ('-' = stdout).")
_CASES = flags.DEFINE_list("cases", [], "run only these cases (default: all).")

_SAMPLES = "data"

# What each case predicts after training (stdin of `tftransfer predict`): the
# predicted scores are more sensitive than the rounded-off metrics.
_SENTENCES = "what a lovely day\nthis is the worst film of the year\n"
PREDICT = {
    "sentiment": _SENTENCES,
    "sentence_pairs": '{"text": "A man plays a guitar.", "text_pair": "A person makes music."}\n',
    "ner": '{"text": "Alice moved to Paris to work for Google"}\n',
    "question_answering": '{"question": "Who wrote it?", "context": "Alice wrote it in Paris."}\n',
}

# name -> (config file, overrides). Few steps and short sequences keep each
# case under a minute; the figures are a fingerprint, not a quality result.
CASES = {
    "sentiment": (
        "configs/demo_goemotions_sentiment.yaml",
        ["trainer.train_steps=4", "trainer.batch_size=16"],
    ),
    "sentence_pairs": (
        "configs/snli_agreement_minilm.yaml",
        ["trainer.train_steps=4", "trainer.batch_size=16", "data.test.path=''"],
    ),
    "ner": (
        "configs/wnut17_minilm.yaml",
        [
            f"data.train.path={_SAMPLES}/wnut17_sample/train.conll",
            f"data.validation.path={_SAMPLES}/wnut17_sample/dev.conll",
            "data.test.path=''",
            "trainer.train_steps=4",
            "trainer.batch_size=16",
        ],
    ),
    "question_answering": (
        "configs/squad_minilm.yaml",
        [
            f"data.train.path={_SAMPLES}/squad_sample/train.json",
            f"data.validation.path={_SAMPLES}/squad_sample/dev.json",
            "task.question_answering.max_seq_length=192",
            "task.question_answering.doc_stride=64",
            "trainer.train_steps=3",
            "trainer.batch_size=8",
        ],
    ),
    "masked_lm": (
        "configs/sst2_dapt_minilm.yaml",
        [
            f"data.train.path={_SAMPLES}/goemotions_sentiment/train.csv",
            "data.train.format=csv",
            "data.train.text_column=text",
            "data.train.quoting=minimal",
            f"data.validation.path={_SAMPLES}/goemotions_sentiment/dev.csv",
            "data.validation.format=csv",
            "data.validation.text_column=text",
            "data.validation.quoting=minimal",
            "trainer.train_steps=3",
            "trainer.batch_size=16",
        ],
    ),
    "causal_lm": (
        "configs/shakespeare_smollm2.yaml",
        ["trainer.train_steps=2", "trainer.batch_size=4"],
    ),
}

_PINNED = ["runtime.mixed_precision=float32", "trainer.seed=42"]


def _run(args, env, stdin=None):
    done = subprocess.run(
        [sys.executable, "-m", "tftransfer.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"tftransfer {args[0]} failed:\n{done.stderr[-3000:]}")
    return done


def run_case(name, work_dir, env):
    """Trains, evaluates and predicts one case; returns the figures."""
    config, overrides = CASES[name]
    model_dir = os.path.join(work_dir, name)
    flags_ = [f"--params_override={o}" for o in [*overrides, *_PINNED]]
    _run(["train", f"--config_file={config}", f"--model_dir={model_dir}", *flags_], env)
    _run(["evaluate", f"--model_dir={model_dir}", "--split=validation"], env)
    with open(os.path.join(model_dir, "eval_validation.json")) as f:
        figures = json.load(f)
    for key in ("checkpoint", "predictions_file"):  # paths under the temporary folder
        figures.pop(key, None)
    if name in PREDICT:
        done = _run(["predict", f"--model_dir={model_dir}"], env, PREDICT[name])
        figures["predictions"] = [json.loads(line) for line in done.stdout.splitlines()]
    return figures


def _exact(value):
    # repr round-trips a float exactly; json.dumps would too, but a string
    # keeps every tool that reads the file from reformatting it.
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def main(argv):
    del argv
    env = dict(os.environ, TF_DETERMINISTIC_OPS="1", TF_CPP_MIN_LOG_LEVEL="2")
    names = _CASES.value or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    figures = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            figures[name] = _exact(run_case(name, work_dir, env))
    text = json.dumps(figures, indent=1, sort_keys=True) + "\n"
    if _OUTPUT.value == "-":
        sys.stdout.write(text)
    else:
        with open(_OUTPUT.value, "w") as f:
            f.write(text)


if __name__ == "__main__":
    app.run(main)
