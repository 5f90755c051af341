import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import dense

from tftransfer import configs, experiment, loaded_run, run_setup
from tftransfer.training import history
from tftransfer.training import trainer as trainer_lib


def _weights(model_dir, which="latest"):
    loaded = loaded_run.LoadedRun(model_dir, which)
    return [np.array(w) for w in loaded.model.get_weights()]


@pytest.mark.slow
def test_training_learns_and_writes_the_run(tiny_params, tmp_path):
    tiny_params.override({"trainer": {"epochs": 6, "eval_every": 14}})
    model_dir = str(tmp_path / "run")
    metrics = experiment.train(tiny_params, model_dir)
    # The tiny data is separable; a 2-layer random model must get well above chance.
    assert metrics["accuracy"] >= 0.85
    for name in (
        "params.yaml",
        "history.jsonl",
        "training_curves.png",
        "eval_validation.json",
        "eval_validation_confusion_matrix.png",
    ):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "train"))  # TensorBoard events
    saved = configs.from_model_dir(model_dir)
    assert list(saved.task.text_classification.labels) == ["negative", "positive"]
    with open(os.path.join(model_dir, "best", "best.json")) as f:
        best = json.load(f)
    evals = [
        r
        for r in map(json.loads, open(os.path.join(model_dir, "history.jsonl")))
        if "accuracy" in r
    ]
    assert best["accuracy"] == max(r["accuracy"] for r in evals)
    assert metrics["checkpoint_step"] == best["step"]


@pytest.mark.slow
def test_resume_after_crash_matches_uninterrupted_run(tiny_params, tmp_path, train_with_crash):
    tiny_params.override({"trainer": {"epochs": 3, "checkpoint_every": 7, "eval_every": 7}})
    whole = str(tmp_path / "whole")
    experiment.train(tiny_params, whole)
    crashed = str(tmp_path / "crashed")
    train_with_crash(tiny_params, crashed)  # dies in the step-14 evaluation; resumes from step 7

    for a, b in zip(_weights(whole), _weights(crashed)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_mirrored_two_replicas_match_one_device(tiny_params, tmp_path):
    # Unset, packing would pack on one device and fall back on two: other batches.
    tiny_params.override({"trainer": {"epochs": 1}, "data": {"packing": False}})
    one = str(tmp_path / "one")
    experiment.train(tiny_params, one)
    tiny_params.override({"runtime": {"distribution_strategy": "mirrored"}})
    two = str(tmp_path / "two")
    experiment.train(tiny_params, two)

    def losses(d):
        return [
            r["loss"]
            for r in map(json.loads, open(os.path.join(d, "history.jsonl")))
            if "loss" in r
        ]

    assert len(losses(one)) >= 1
    np.testing.assert_allclose(losses(one), losses(two), rtol=1e-4)
    for a, b in zip(_weights(one), _weights(two)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_unknown_validation_label_fails_before_training(tiny_params, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngreat\tpositive\nmeh\tneutral\n")
    tiny_params.override({"data": {"validation": {"path": str(bad)}}})
    with pytest.raises(ValueError, match=r"bad.tsv:3: unknown label `neutral`"):
        experiment.train(tiny_params, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.slow
def test_max_seq_length_beyond_the_backbones_positions_is_clamped_with_a_warning(
    tiny_params, tmp_path, caplog
):
    tiny_params.override({"task": {"text_classification": {"max_seq_length": 128}}})
    tiny_params.override({"trainer": {"epochs": 1}})
    model_dir = str(tmp_path / "run")
    experiment.train(tiny_params, model_dir)
    assert "max_seq_length is 128, but the backbone" in caplog.text
    assert configs.from_model_dir(model_dir).task.text_classification.max_seq_length == 64


def test_early_stopping_stops_and_stays_stopped(tmp_path):
    # With a vanishing learning rate the metric cannot improve after the first evaluation.
    run = str(tmp_path / "run")
    settings = {"epochs": 4, "eval_every": 3, "learning_rate": 1e-12, "early_stopping_patience": 2}
    dense.train(run, **settings)
    with open(os.path.join(run, "early_stopped.json")) as f:
        assert json.load(f)["step"] == 9  # evaluations at 3 (best), 6, 9
    trainer, _ = dense.train(run, **settings)  # a rerun does not train on
    assert [r["step"] for r in history.read(run) if "accuracy" in r] == [3, 6, 9]
    assert trainer.step == 9
    assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith("ckpt-9")


def test_eval_on_start_scores_the_pretrained_model_without_taking_part(tmp_path):
    run = str(tmp_path / "run")
    dense.train(
        run,
        epochs=4,
        eval_every=3,
        eval_on_start=True,
        learning_rate=1e-12,
        early_stopping_patience=2,
    )
    evals = [r for r in history.read(run) if "accuracy" in r]
    # Step 0 is the untouched model: the same score as step 3 at this learning rate,
    # yet neither the best checkpoint nor a stale evaluation for early stopping.
    assert [r["step"] for r in evals] == [0, 3, 6, 9]
    assert evals[0]["accuracy"] == evals[1]["accuracy"]
    with open(os.path.join(run, "best", "best.json")) as f:
        assert json.load(f)["step"] == 3
    with open(os.path.join(run, "early_stopped.json")) as f:
        assert json.load(f)["step"] == 9


def test_ctrl_c_saves_a_checkpoint_to_resume_from(tmp_path, monkeypatch):
    real = trainer_lib.Trainer._make_train_step

    def interrupt_third_step(self, variables):
        step_fn, steps_fn = real(self, variables)
        calls = {"n": 0}

        def wrapped(features, labels):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt()
            return step_fn(features, labels)

        return wrapped, steps_fn

    run = str(tmp_path / "run")
    monkeypatch.setattr(trainer_lib.Trainer, "_make_train_step", interrupt_third_step)
    with pytest.raises(KeyboardInterrupt):
        dense.train(run, epochs=1, checkpoint_every=100)
    latest = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    assert os.path.basename(latest) == "ckpt-2"
    monkeypatch.setattr(trainer_lib.Trainer, "_make_train_step", real)
    dense.train(run, epochs=1, checkpoint_every=100)
    assert [r["step"] for r in history.read(run) if "loss" in r][-1] == 7


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_trace_per_bucket_shape(tiny_params, tmp_path, monkeypatch, jit_compile):
    from tftransfer.data import pipeline
    from tftransfer.training import trainer as trainer_lib

    # The tiny sentences are 4 to 9 tokens long: three buckets. No validation
    # split: evaluation traces (and compiles) its own functions, not counted here.
    tiny_params.override(
        {
            "data": {"bucket_boundaries": [5, 7], "packing": False, "validation": {"path": ""}},
            "trainer": {"jit_compile": jit_compile},
        }
    )
    steps = []
    make = trainer_lib.Trainer._make_train_step
    monkeypatch.setattr(
        trainer_lib.Trainer,
        "_make_train_step",
        lambda self, variables: steps.append(make(self, variables)) or steps[-1],
    )
    experiment.train(tiny_params, str(tmp_path / "run"))
    ((step, _),) = steps
    examples = run_setup.read_split(tiny_params, "train")
    _, task = experiment.prepare_task(tiny_params, examples)
    total = tiny_params.trainer.epochs * (len(examples) // tiny_params.trainer.batch_size)
    stream = pipeline.train_dataset(task, examples, 8, tiny_params.data, tiny_params.trainer.seed)
    widths = {f["token_ids"].shape[1] for f, _ in stream.take(total)}
    assert len(widths) == 3
    assert step.experimental_get_tracing_count() == len(widths)


def test_xla_default_follows_the_device():
    import tensorflow as tf

    from tftransfer.training import train_step

    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    cfg = configs.TrainerConfig()
    assert cfg.jit_compile is None
    assert not train_step.use_xla(cfg, cpu)  # slower on CPUs (BENCHMARKS.md)
    cfg.jit_compile = True
    assert train_step.use_xla(cfg, cpu)
    # No GPU here: what the default reads from a GPU strategy is its device names.
    gpu = type(
        "GPUStrategy",
        (),
        {"extended": type("Extended", (), {"worker_devices": ("/job:w/device:GPU:0",)})},
    )
    assert train_step.use_xla(configs.TrainerConfig(), gpu)


def test_early_stopping_patience_survives_a_resume(tmp_path):
    settings = {
        "epochs": 4,
        "eval_every": 3,
        "checkpoint_every": 3,
        "learning_rate": 1e-12,
        "early_stopping_patience": 3,
    }
    run = str(tmp_path / "run")
    calls = {"n": 0}

    def die_at_third_evaluation():
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt()  # the process dies during step 9's evaluation

    with pytest.raises(KeyboardInterrupt):
        dense.train(run, on_evaluate=die_at_third_evaluation, **settings)
    dense.train(run, **settings)
    # Evaluations at 3 (best), 6, 9, 12: the one at 6 still counts after the resume.
    with open(os.path.join(run, "early_stopped.json")) as f:
        assert json.load(f)["step"] == 12


def test_a_truncated_latest_checkpoint_is_named_and_the_one_before_resumed(tmp_path, caplog):
    model_dir = str(tmp_path / "run")
    dense.train(model_dir, epochs=2, checkpoint_every=5)
    folder = os.path.join(model_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(folder)
    data = [f for f in os.listdir(folder) if f.startswith(os.path.basename(latest) + ".data")]
    with open(os.path.join(folder, data[0]), "r+b") as f:
        f.truncate(100)  # a disk that filled up mid-write
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="absl"):
        dense.train(model_dir, epochs=3, checkpoint_every=5)
    out = caplog.text
    assert f"Checkpoint {latest} is unreadable" in out
    assert "Resuming from" in out and "(step 10)" in out
    assert max(r["step"] for r in history.read(model_dir)) == 21  # the lost steps redone


def test_steps_per_execution_trains_the_same_steps_in_fewer_calls(tmp_path):
    settings = {"epochs": 3, "eval_every": 7, "checkpoint_every": 10, "log_every": 4}
    one, many = str(tmp_path / "one"), str(tmp_path / "many")
    dense.train(one, **settings)
    _, best = dense.train(many, steps_per_execution=6, **settings)

    def records(d, key):
        return [r for r in history.read(d) if key in r]

    # Calls stop at every evaluation and checkpoint, so those keep their steps.
    assert [r["step"] for r in records(many, "accuracy")] == [7, 14, 21]
    assert sorted(os.listdir(os.path.join(many, "checkpoints"))) == sorted(
        os.listdir(os.path.join(one, "checkpoints"))
    )
    assert best["step"] in (7, 14, 21)
    for a, b in zip(dense.weights(one), dense.weights(many), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Calls end at 6, 7, 10, 14, 20, 21: a loss record where one passed a
    # multiple of log_every (4), and at the end.
    assert [r["step"] for r in records(many, "loss")] == [6, 10, 14, 20, 21]


def test_a_resume_removes_what_a_kill_during_a_save_left(tmp_path):
    from tftransfer.training.checkpoints import remove_unfinished_saves

    folder = tmp_path / "checkpoints"
    (folder / "ckpt-3_temp").mkdir(parents=True)  # killed while writing ckpt-3
    (folder / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"0" * 64)
    for name in ("checkpoint", "ckpt-2.index", "ckpt-2.data-00000-of-00001"):
        (folder / name).write_text("kept")
    assert remove_unfinished_saves(str(folder)) == [str(folder / "ckpt-3_temp")]
    assert sorted(os.listdir(folder)) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
    ]
    assert remove_unfinished_saves(str(tmp_path / "missing")) == []
