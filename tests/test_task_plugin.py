"""A task added from outside the package (`helpers/score_task.py`).

Nothing in `tftransfer/` knows about `test_score_regression`, yet the config
loader, training (with a metric where lower is better), evaluation, export
and predict all run it, from Python and from the CLI (`--import`), and an
installed package can add a task through the `tftransfer.tasks` entry point.
"""

import dataclasses
import json
import os
import sys

import numpy as np
import pytest
from helpers import cli_call, fresh_process
from helpers.score_task import ScoreRegressionConfig

from tftransfer import configs, experiment, export, loaded_run, predict, tasks

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def scores_tsv(tmp_path_factory):
    from helpers import tiny

    path = tmp_path_factory.mktemp("scores") / "scores.tsv"
    lines = ["sentence\tscore"]
    for _ in range(4):
        lines += [f"{p}\t1.0" for p in tiny.POSITIVE] + [f"{n}\t-1.0" for n in tiny.NEGATIVE]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_a_task_from_one_module_trains_exports_and_predicts(tiny_preset, scores_tsv, tmp_path):
    config = tmp_path / "score.yaml"
    config.write_text(
        "task:\n  type: test_score_regression\n"
        f"backbone:\n  spec: {tiny_preset}\n"
        "data:\n"
        f"  train: {{path: {scores_tsv}, text_column: sentence, label_column: score}}\n"
        f"  validation: {{path: {scores_tsv}, text_column: sentence, label_column: score}}\n"
        "trainer: {batch_size: 8, epochs: 4, eval_every: 7, learning_rate: 0.003, seed: 3}\n"
    )
    params = configs.load([str(config)])
    assert isinstance(params.task.get(), ScoreRegressionConfig)
    run = str(tmp_path / "run")
    # Trained, evaluated, exported and used for prediction through the CLI
    # (`--import` names the module; in-process here, a fresh process below).
    trained = cli_call.run(
        "train", f"--config_file={config}", f"--model_dir={run}", "--import=helpers.score_task"
    )
    assert trained.returncode == 0, trained
    with open(os.path.join(run, "eval_validation.json"), encoding="utf-8") as f:
        metrics = json.load(f)

    # Lower is better: the best checkpoint is the one with the smallest error.
    history = experiment.history.read(run)
    errors = {r["step"]: r["mse"] for r in history if "mse" in r}
    assert len(errors) >= 3
    assert metrics["checkpoint_step"] == min(errors, key=errors.get)
    assert metrics["mse"] < 1.0  # better than predicting 0 for every text
    # Evaluating the run again scores what training scored: the task builds
    # its own model and so does not pack, in training or in evaluation.
    again = loaded_run.evaluate(run)
    assert again["mse"] == pytest.approx(metrics["mse"], abs=1e-5)
    # From the command line, in a fresh process that knows the task only
    # through --import.
    command = ["evaluate", f"--model_dir={run}", "--import=helpers.score_task"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    result = fresh_process.run([sys.executable, "-m", "tftransfer.cli", *command], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["mse"] == pytest.approx(
        metrics["mse"], abs=1e-5
    )
    texts = tmp_path / "texts.txt"
    texts.write_text("great movie\nawful movie\n")
    by_cli = cli_call.run("predict", f"--model_dir={run}", f"--input={texts}")
    assert by_cli.returncode == 0, by_cli
    cli_scores = [json.loads(line)["score"] for line in by_cli.stdout.splitlines()]

    exported = cli_call.run("export", f"--model_dir={run}", f"--export_dir={tmp_path / 'serving'}")
    assert exported.returncode == 0, exported
    path = str(tmp_path / "serving" / "1")
    assert export.read_metadata(path)["task"] == "test_score_regression"
    records = [{"text": "great movie"}, {"text": "awful movie"}]
    served = predict.with_saved_model(path, records)
    in_process = predict.with_checkpoint(run, records)
    np.testing.assert_allclose(
        [r["score"] for r in served], [r["score"] for r in in_process], atol=1e-5
    )
    assert served[0]["score"] > served[1]["score"]
    np.testing.assert_allclose(cli_scores, [r["score"] for r in in_process], atol=1e-5)
    assert os.path.exists(os.path.join(run, "training_curves.png"))


def test_its_declared_fields_are_checked_and_unknown_tasks_list_it(tiny_preset):
    with pytest.raises(configs.ConfigError, match=r"task.test_score_regression.dropout"):
        configs.load(
            [],
            {"task": {"type": "test_score_regression", "test_score_regression": {"dropout": 2}}},
        )
    with pytest.raises(configs.ConfigError, match=r"test_score_regression"):
        configs.load([], {"task": {"type": "nope"}})


def test_a_task_whose_fields_declare_nothing_is_not_registered():
    @dataclasses.dataclass
    class Loose(tasks.TaskConfig):
        alpha: float = 0.5

    with pytest.raises(TypeError, match="Loose fields alpha declare no range or choices"):
        tasks.register("test_loose", Loose)
    assert "test_loose" not in tasks.registered()


def test_an_import_that_fails_is_one_line(tmp_path):
    result = cli_call.run("evaluate", f"--model_dir={tmp_path}", "--import=no_such_tasks_module")
    assert result.returncode == 2 and len(result.error_lines) == 1, result
    assert "--import=no_such_tasks_module: No module named 'no_such_tasks_module'" in result.stderr


def test_an_unknown_task_block_says_how_to_add_a_task():
    with pytest.raises(configs.ConfigError, match="give --import=<its module>"):
        configs.load([], {"task": {"my_task": {"alpha": 1}}})


def test_an_installed_package_adds_tasks_through_its_entry_point(tmp_path, monkeypatch):
    # What `pip install` of a package with this in its setup.cfg leaves behind:
    # [options.entry_points]
    # tftransfer.tasks = grade = grading_task
    (tmp_path / "grading_task.py").write_text(
        "import dataclasses\n"
        "from tftransfer import config_checks, tasks\n"
        "from helpers.score_task import ScoreRegression\n"
        "@dataclasses.dataclass\n"
        "class GradeConfig(tasks.TaskConfig):\n"
        "    max_seq_length: int = config_checks.bounded(32, low=2, high=512)\n"
        "    dropout: float = config_checks.bounded(0.0, low=0.0, below=1.0)\n"
        "    pooling: str = config_checks.one_of('mean', ('mean',))\n"
        "    text_pair: bool = False\n"
        "tasks.register('test_grade', GradeConfig)(type('Grade', (ScoreRegression,), {}))\n"
    )
    info = tmp_path / "grading_task-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: grading-task\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tftransfer.tasks]\ngrade = grading_task\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "test_grade" in tasks.registered()
    params = configs.load([], {"task": {"type": "test_grade", "test_grade": {"dropout": 0.1}}})
    assert params.task.get().dropout == 0.1


def test_each_task_says_what_its_summary_line_shows():
    from helpers.score_task import ScoreRegression

    metrics = {"examples": 56, "mse": 0.25, "per_label": {}, "checkpoint_step": 7}
    # Text classification's line, and the primary metric that the plugin changed.
    assert ScoreRegression.summary(metrics) == "Evaluation: examples=56, mse=0.2500"

    class Bare(ScoreRegression):
        summary_metrics = ()  # says nothing: the primary metric, then every number

    assert Bare.summary(metrics) == "Evaluation: mse=0.2500, checkpoint_step=7, examples=56"
    ner = tasks.get("token_classification")
    assert ner.summary({"f1": 0.5, "sentences": 3, "precision": 0.25, "recall": 1.0}) == (
        "Evaluation: sentences=3, precision=0.2500, recall=1.0000, f1=0.5000"
    )


def test_the_text_fields_a_plugin_declares_are_checked_when_predict_reads_them(
    tmp_path, monkeypatch
):
    from helpers.score_task import ScoreRegression

    from tftransfer.cli import records
    from tftransfer.data.readers import DataError

    monkeypatch.setattr(ScoreRegression, "input_text_fields", ("text", "headline"))
    path = tmp_path / "inputs.jsonl"
    path.write_text('{"headline": "fine"}\n{"headline": " "}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"inputs.jsonl:2: field `headline` is empty"):
        list(records.read_records(str(path)))
