"""Writes tests/fixtures/old_run/: a tiny text-classification run, as `train` wrote it.

`tests/test_old_run.py` evaluates, exports and predicts with this folder as
checked in, so a change that no longer reads a run written by an earlier
version (a renamed config key, a moved layer, a tokenizer class that moved)
fails there. Regenerate only on purpose (a deliberate format change, said in
CHANGELOG.md), from the repository root:

    python tests/helpers/make_old_run.py
"""

import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join("tests", "fixtures", "old_run")  # relative: params.yaml names it
TEXTS = ["great movie", "i hate this film", "what a lovely day"]


def main():
    sys.path.insert(0, os.path.dirname(HERE))
    os.chdir(ROOT)
    from helpers import tiny
    from tftransfer import experiment, predict

    shutil.rmtree(FIXTURE, ignore_errors=True)
    os.makedirs(FIXTURE)
    preset = tiny.make_preset(os.path.join(FIXTURE, "preset"))
    data = tiny.write_tsv(os.path.join(FIXTURE, "data.tsv"), n_repeat=1)
    params = tiny.classification_params(preset, data)
    run = os.path.join(FIXTURE, "run")
    experiment.train(params, run)
    # What the test needs: the config, the checkpoints and the answers.
    for name in os.listdir(run):
        if name not in ("params.yaml", "checkpoints", "best", "eval_validation.json"):
            path = os.path.join(run, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    answers = predict.with_checkpoint(run, [{"text": t} for t in TEXTS])
    with open(os.path.join(FIXTURE, "answers.json"), "w", encoding="utf-8") as f:
        json.dump(answers, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
