"""Shared fixtures: tiny random backbones, small data files, 2 logical CPUs."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Split the CPU into two logical devices before TF initialises, so that
# MirroredStrategy runs on two replicas without any accelerator.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import tiny  # noqa: E402

from tftransfer import configs  # noqa: E402


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    return tiny.make_preset(str(tmp_path_factory.mktemp("tiny") / "preset"))


@pytest.fixture(scope="session")
def sentiment_tsv(tmp_path_factory):
    return tiny.write_tsv(str(tmp_path_factory.mktemp("data") / "train.tsv"))


@pytest.fixture
def tiny_params(tiny_preset, sentiment_tsv):
    """A small, fast text-classification experiment on the tiny backbone."""
    return configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {
                "text_classification": {"max_seq_length": 32, "dropout": 0.0, "pooling": "mean"}
            },
            "data": {
                "train": {"path": sentiment_tsv, "text_column": "sentence"},
                "validation": {"path": sentiment_tsv, "text_column": "sentence"},
            },
            "trainer": {
                "batch_size": 8,
                "epochs": 2,
                "learning_rate": 3e-3,
                "checkpoint_every": 5,
                "seed": 7,
            },
        },
    )


class Crash(Exception):
    """Stands for a process dying mid-training."""


@pytest.fixture
def train_with_crash(monkeypatch):
    """Trains, dying at the second evaluation; then reruns, which resumes."""
    from tftransfer import evaluation, experiment

    def run(params, model_dir):
        real = evaluation.evaluate_dataset
        calls = {"n": 0}

        def crash_on_second_eval(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise Crash()
            return real(*args, **kwargs)

        monkeypatch.setattr(evaluation, "evaluate_dataset", crash_on_second_eval)
        with pytest.raises(Crash):
            experiment.train(params, model_dir)
        monkeypatch.setattr(evaluation, "evaluate_dataset", real)
        return experiment.train(params, model_dir)

    return run


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    """A tiny random Llama as a Hugging Face folder, converted from a tiny GGUF."""
    return tiny.llama_folder(str(tmp_path_factory.mktemp("llama") / "hf"))
