"""Shared fixtures: tiny random backbones, small data files, 2 logical CPUs, tiers."""

import os
import re
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `runtime.mixed_precision: auto` picks bfloat16 on CPUs with bf16 units:
# the suite computes in float32 on every machine, so that its numbers
# (parity with transformers, resumes, same-weights checks) do not depend on
# the CPU. Subprocesses inherit it. tests/test_auto_precision.py clears it.
os.environ["TFTRANSFER_AUTO_PRECISION"] = "float32"
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Split the CPU into two logical devices before TF initialises, so that
# MirroredStrategy runs on two replicas without any accelerator.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from helpers import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    return tiny.make_preset(str(tmp_path_factory.mktemp("tiny") / "preset"))


@pytest.fixture(scope="session")
def sentiment_tsv(tmp_path_factory):
    return tiny.write_tsv(str(tmp_path_factory.mktemp("data") / "train.tsv"))


@pytest.fixture
def tiny_params(tiny_preset, sentiment_tsv):
    """A small, fast text-classification experiment on the tiny backbone."""
    return tiny.classification_params(tiny_preset, sentiment_tsv)


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


# A docstring example that shows a real checkpoint (MiniLM as `default`, the
# SmolLM2 decoder) or trains says so in its code: it belongs to the `slow` tier.
_REAL_WEIGHTS = re.compile(r'"default"|default_path\(|decoder_path\(|experiment\.train\(|demo_')


def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, pytest.DoctestItem) and any(
            _REAL_WEIGHTS.search(example.source) for example in item.dtest.examples
        ):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)
    # Longest first: modules with real-weight tests, then those with slow
    # tests, each module kept whole and in order. Under `make test`'s
    # `pytest-xdist --dist loadscope` a worker then never starts a long module
    # while the other is idle at the end of the run.
    cost = {}
    for item in items:
        rank = 2 if item.get_closest_marker("integration") else 0
        rank = rank or int(item.get_closest_marker("slow") is not None)
        module = item.nodeid.split("::")[0]
        cost[module] = max(cost.get(module, 0), rank)
    items.sort(key=lambda item: -cost[item.nodeid.split("::")[0]])
