"""A run folder written by an earlier version still evaluates, exports and predicts.

`tests/fixtures/old_run/` is checked in (made by `tests/helpers/make_old_run.py`):
its params.yaml, checkpoints and the answers it gave. A change to config keys,
layer names or the export that stops old runs from loading fails here.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tftransfer import configs, export, loaded_run, predict

FIXTURE = os.path.join("tests", "fixtures", "old_run")


@pytest.fixture
def old_run(tmp_path):
    # A copy: evaluation and export write into the run folder. The paths in
    # its params.yaml are relative to the repository root, where tests run.
    run = tmp_path / "run"
    shutil.copytree(os.path.join(FIXTURE, "run"), run)
    with open(os.path.join(FIXTURE, "answers.json"), encoding="utf-8") as f:
        return str(run), json.load(f)


@pytest.mark.slow
def test_an_old_run_gives_the_answers_it_gave(old_run):
    run, answers = old_run
    assert configs.from_model_dir(run).task.text_classification.labels == ["negative", "positive"]
    records = [{"text": a["text"]} for a in answers]
    again = predict.with_checkpoint(run, records)
    assert [a["labels"] for a in again] == [a["labels"] for a in answers]
    np.testing.assert_allclose(
        [a["probabilities"] for a in again], [a["probabilities"] for a in answers], atol=1e-5
    )
    with open(os.path.join(FIXTURE, "run", "eval_validation.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert loaded_run.evaluate(run)["accuracy"] == pytest.approx(saved["accuracy"])
    path = export.export_run(run, os.path.join(run, "export"))
    served = predict.with_saved_model(path, records)
    np.testing.assert_allclose(
        [a["probabilities"] for a in served], [a["probabilities"] for a in answers], atol=1e-5
    )
