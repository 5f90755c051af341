"""What a TPU needs from the input, checked on CPU: no strings, one static shape."""

import json

import pytest
import tensorflow as tf
from helpers import tiny

from tftransfer import configs, experiment, run_setup
from tftransfer.data import pipeline
from tftransfer.training import distribute


def _task_params(kind, tmp_path, tiny_preset, sentiment_tsv, llama_dir):
    if kind == "text_classification":
        task = {"text_classification": {"max_seq_length": 32}}
        data = {"path": sentiment_tsv, "text_column": "sentence"}
    elif kind == "token_classification":
        task = {"type": kind, kind: {"max_seq_length": 8}}
        data = {"path": tiny.write_conll(str(tmp_path / "train.conll"))}
    elif kind == "question_answering":
        path = tmp_path / "train.json"
        path.write_text(json.dumps(tiny.name_questions()))
        task = {"type": kind, kind: {"max_seq_length": 24, "max_query_length": 6, "doc_stride": 8}}
        data = {"path": str(path)}
    elif kind == "masked_lm":
        path = tmp_path / "domain.txt"
        path.write_text(" ".join(["the movie was great fun and i love it"] * 40))
        task = {"type": kind, kind: {"max_seq_length": 16}}
        data = {"path": str(path)}
    else:
        path = tmp_path / "plays.txt"
        path.write_text("To be, or not to be: that is the question.\n" * 20)
        task = {"type": kind, kind: {"max_seq_length": 16}}
        data = {"path": str(path)}
    spec = llama_dir if kind == "causal_lm" else tiny_preset
    return configs.load([], {"backbone": {"spec": spec}, "task": task, "data": {"train": data}})


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["text_classification", "token_classification", "question_answering", "masked_lm", "causal_lm"],
)
def test_fixed_shape_batches_are_fully_static_and_numeric(
    kind, tmp_path, tiny_preset, sentiment_tsv, llama_dir
):
    params = _task_params(kind, tmp_path, tiny_preset, sentiment_tsv, llama_dir)
    params.override({"data": {"bucket_boundaries": [4, 8]}})  # ignored for fixed shapes
    examples = run_setup.read_split(params, "train")
    _, task = experiment.prepare_task(params, examples)
    dataset = pipeline.train_dataset(task, examples, 4, params.data, seed=1, fixed_shapes=True)
    length = task.config.max_seq_length
    for spec in tf.nest.flatten(dataset.element_spec):
        assert spec.shape.is_fully_defined(), dataset.element_spec
        assert spec.shape[0] == 4
        assert spec.dtype != tf.string  # tokenization stays on the host
    features, _ = next(iter(dataset))
    assert features["token_ids"].shape == (4, length)


def test_tpu_without_a_tpu_fails_with_a_clear_message():
    with pytest.raises(
        distribute.DistributeError, match="no TPU could be initialised.*--tpu=local"
    ):
        distribute.get_strategy(configs.RuntimeConfig(distribution_strategy="tpu", tpu="local"))


def test_a_global_batch_that_does_not_split_names_both_numbers(tiny_params):
    tiny_params.override(
        {"runtime": {"distribution_strategy": "mirrored"}, "trainer": {"batch_size": 7}}
    )
    with pytest.raises(
        distribute.DistributeError, match="batch_size is the global batch size, 7.*2 replicas"
    ):
        experiment.build(tiny_params)
