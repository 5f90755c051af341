import numpy as np
import pytest
import yaml
from helpers import fresh_process, tiny

from tftransfer import configs, experiment, export, predict
from tftransfer.data.readers import DataError
from tftransfer.tasks.text_regression import TextRegression, regression_report


def _score(text, pair):
    # Far from 0 and 1 in scale: wrong de-normalisation would show.
    return 200.0 + 40.0 * (text in tiny.POSITIVE) + 20.0 * (pair in tiny.POSITIVE)


def _write(path, rows):
    with open(path, "w") as f:
        f.write("a\tb\tscore\tdouble\n")
        for a, b in rows:
            f.write(f"{a}\t{b}\t{_score(a, b)}\t{2 * _score(a, b)}\n")
    return str(path)


def _pairs():
    texts = tiny.POSITIVE + tiny.NEGATIVE
    return [(a, b) for i, a in enumerate(texts) for b in texts[i % 3 :: 3]]


def test_a_target_that_is_not_a_number_names_file_line_and_field(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,stars\ngood,4.5\nbad,n/a\n")
    with pytest.raises(DataError, match=rf"{path}:3: field `stars` must be a number, got 'n/a'"):
        TextRegression.read(configs.InputConfig(path=str(path), label_column="stars"))
    path.write_text("text,stars\ngood,inf\n")
    with pytest.raises(DataError, match=rf"{path}:2: field `stars` must be a finite number"):
        TextRegression.read(configs.InputConfig(path=str(path), label_column="stars"))


def test_report_correlations_and_errors():
    gold = np.array([[1.0], [2.0], [3.0], [4.0]])
    metrics = regression_report(gold, gold**2, ["y"])
    assert metrics["spearman"] == pytest.approx(1.0)  # same order
    assert 0.9 < metrics["pearson"] < 1.0  # not linear
    assert metrics["mae"] == pytest.approx((0 + 2 + 6 + 12) / 4)
    assert regression_report(gold, np.ones_like(gold), ["y"])["pearson"] == 0.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_preset):
    data = tmp_path_factory.mktemp("regression")
    path = _write(data / "pairs.tsv", _pairs())
    split = {
        "path": path,
        "text_column": "a",
        "text_pair_column": "b",
        "label_columns": ["score", "double"],
    }
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {
                "type": "text_regression",
                "text_regression": {"max_seq_length": 32, "pooling": "mean", "dropout": 0.0},
            },
            "data": {"train": split, "validation": split},
            "trainer": {"batch_size": 8, "learning_rate": 3e-3, "epochs": 4},
        },
    )
    model_dir = str(data / "run")
    return model_dir, experiment.train(params, model_dir)


@pytest.mark.slow
def test_targets_are_normalised_and_learned(run_dir):
    model_dir, metrics = run_dir
    saved = configs.load([f"{model_dir}/params.yaml"], {}).task.text_regression
    assert saved.targets == ["score", "double"] and saved.text_pair
    scores = np.array([_score(a, b) for a, b in _pairs()])
    np.testing.assert_allclose(saved.target_mean, [scores.mean(), 2 * scores.mean()], rtol=1e-5)
    np.testing.assert_allclose(saved.target_std, [scores.std(), 2 * scores.std()], rtol=1e-5)
    assert metrics["pearson"] > 0.6 and set(metrics["per_target"]) == {"score", "double"}


@pytest.mark.slow
def test_export_answers_on_the_original_scale(run_dir, tmp_path):
    model_dir, _ = run_dir
    path = export.export_run(model_dir, str(tmp_path / "serving"))
    rows = [{"text": a, "text_pair": b} for a, b in _pairs()[:6]]
    served = np.array(fresh_process.serve(path, ["text", "text_pair"], rows)["outputs"]["scores"])
    expected = np.array([r["scores"] for r in predict.with_checkpoint(model_dir, rows)])
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert 180 < served[:, 0].mean() < 280  # de-normalised (the model's own outputs are near 0)
    np.testing.assert_allclose(served[:, 1], 2 * served[:, 0], rtol=0.25)


def test_classification_settings_are_no_keys_of_regression():
    with pytest.raises(
        configs.ConfigError, match="unknown config key `task.text_regression.labels`"
    ):
        configs.load(
            [], {"task": {"type": "text_regression", "text_regression": {"labels": ["a"]}}}
        )


def test_a_run_written_with_the_shared_classification_fields_still_loads(tmp_path):
    # Earlier versions wrote text classification's label fields into every
    # text regression run's params.yaml.
    params = configs.load([], "task.type=text_regression")
    raw = params.as_dict()
    raw["task"]["text_regression"].update(labels=[], class_weights=[], balanced_class_weights=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    loaded = configs.from_model_dir(str(tmp_path))
    assert loaded.task.type == "text_regression"
    assert loaded.task.text_regression.as_dict() == params.task.text_regression.as_dict()
