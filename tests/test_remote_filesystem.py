"""A model_dir on a non-local filesystem: TensorFlow's `ram://` stands in for `gs://`.

TPUs read and write only Cloud Storage, so every file a run writes under
model_dir (checkpoints, summaries, history, params, reports, plots, the
export) must go through `tf.io.gfile`. A write through `open`/`os` would
either fail on `ram://` or create a local folder named `ram:`.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from tftransfer import configs, experiment, export, loaded_run, predict
from tftransfer.training import history


def _walk(root):
    return {
        os.path.join(d, f)[len(root) :].lstrip("/")
        for d, _, files in tf.io.gfile.walk(root)
        for f in files
    }


@pytest.mark.slow
def test_train_evaluate_resume_and_export_on_ram_filesystem(tiny_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written locally by mistake would land here
    model_dir = "ram://tftransfer_test/run"
    data = "ram://tftransfer_test/data/train.tsv"  # data may live beside it (gs:// on TPUs)
    tf.io.gfile.makedirs(os.path.dirname(data))
    tf.io.gfile.copy(tiny_params.data.train.path, data, overwrite=True)
    tiny_params.override(
        {
            "trainer": {"epochs": 1, "checkpoint_every": 2, "eval_every": 3},
            "data": {
                "train": {"path": data},
                "validation": {"path": "ram://tftransfer_test/data/*.tsv"},
            },
        }
    )
    metrics = experiment.train(tiny_params, model_dir)

    files = _walk(model_dir)
    for name in (
        "params.yaml",
        "history.jsonl",
        "training_curves.png",
        "eval_validation.json",
        "eval_validation_confusion_matrix.png",
        "best/best.json",
        "run_summary.json",
    ):
        assert name in files, name
    assert any(f.startswith("checkpoints/ckpt-") for f in files)
    assert any(f.startswith("train/events.out.tfevents") for f in files)
    assert any(f.startswith("validation/events.out.tfevents") for f in files)
    assert configs.from_model_dir(model_dir).task.text_classification.labels
    steps = [r["step"] for r in history.read(model_dir) if "loss" in r]
    assert steps

    # A rerun resumes from the ram:// checkpoint: nothing more to train.
    assert experiment.train(tiny_params, model_dir)["accuracy"] == metrics["accuracy"]
    assert [r["step"] for r in history.read(model_dir) if "loss" in r] == steps

    assert loaded_run.evaluate(model_dir)["accuracy"] == metrics["accuracy"]
    version = export.export_run(model_dir)
    assert version == f"{model_dir}/export/1"
    assert export.read_metadata(version)["task"] == "text_classification"
    texts = ["great movie", "awful film"]
    served = predict.with_saved_model(version, [{"text": t} for t in texts], batch_size=2)
    checkpoint = predict.with_checkpoint(model_dir, [{"text": t} for t in texts], batch_size=2)
    for a, b in zip(served, checkpoint):
        assert a["labels"] == b["labels"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)

    assert os.listdir(tmp_path) == []  # nothing went to the local disk


@pytest.mark.slow
def test_continued_pretraining_then_fine_tuning_on_ram_filesystem(
    tiny_params, tiny_preset, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    text = tmp_path.parent / f"{tmp_path.name}_domain.txt"
    text.write_text(" ".join(["the movie was great fun and i love it"] * 20))
    pretrain = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"type": "masked_lm", "masked_lm": {"max_seq_length": 16}},
            "data": {"train": {"path": str(text)}},
            "trainer": {"batch_size": 4, "train_steps": 4},
        },
    )
    model_dir = "ram://tftransfer_test/chained"
    tiny_params.override({"trainer": {"train_steps": 4}, "data": {"validation": {"path": ""}}})
    preset = experiment.pretrain_then(pretrain, tiny_params, model_dir)
    assert preset == f"{model_dir}/pretrain/backbone"
    assert tf.io.gfile.exists(f"{preset}/config.json")  # keras-hub's own preset files
    experiment.train(tiny_params, model_dir)
    assert configs.from_model_dir(model_dir).backbone.spec == preset
    assert os.listdir(tmp_path) == []
