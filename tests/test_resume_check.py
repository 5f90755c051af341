"""Rerunning `train` on a model_dir: a compatible config resumes, another is refused."""

import os
import shutil

import pytest
from helpers import tiny

from tftransfer import configs, experiment, export, loaded_run
from tftransfer.training import overwrite, resume_check


@pytest.fixture(scope="module")
def trained_once(tiny_preset, sentiment_tsv, tmp_path_factory):
    params = tiny.classification_params(tiny_preset, sentiment_tsv)
    params.override({"trainer": {"epochs": 1}})
    model_dir = str(tmp_path_factory.mktemp("finished") / "run")
    experiment.train(params, model_dir)
    return params, model_dir


@pytest.fixture
def finished_run(trained_once, tmp_path):
    """A finished run, a copy per test: each test writes to it."""
    params, model_dir = trained_once
    copy = str(tmp_path / "run")
    shutil.copytree(model_dir, copy)
    return configs.load([], params.as_dict()), copy


def _snapshot(model_dir):
    with open(os.path.join(model_dir, "params.yaml"), "rb") as f:
        params = f.read()
    return params, sorted(os.listdir(os.path.join(model_dir, "checkpoints")))


@pytest.mark.slow
def test_another_task_config_is_refused_and_the_old_run_still_works(finished_run):
    params, model_dir = finished_run
    before = _snapshot(model_dir)
    changed = configs.load([], params.as_dict())
    changed.override({"task": {"text_classification": {"pooling": "cls"}}})
    with pytest.raises(resume_check.IncompatibleRunError, match="text_classification.pooling"):
        experiment.train(changed, model_dir)
    assert _snapshot(model_dir) == before
    assert "accuracy" in loaded_run.evaluate(model_dir, "validation")
    assert os.path.exists(
        os.path.join(export.export_run(model_dir, model_dir + "-srv"), "saved_model.pb")
    )


@pytest.mark.slow
def test_a_compatible_rerun_resumes_and_reports_what_changed(finished_run, caplog):
    params, model_dir = finished_run
    more = configs.load([], params.as_dict())
    more.override({"trainer": {"epochs": 2, "learning_rate": 1e-3}})
    experiment.train(more, model_dir)
    out = caplog.text
    assert "Resuming with a changed setting: trainer.learning_rate: 0.003 -> 0.001" in out
    assert "trainer.epochs: 1 -> 2" in out
    assert configs.from_model_dir(model_dir).trainer.epochs == 2


@pytest.mark.slow
def test_overwrite_empties_the_model_dir(finished_run):
    _, model_dir = finished_run
    overwrite.clear_folder(model_dir)
    assert os.listdir(model_dir) == []
