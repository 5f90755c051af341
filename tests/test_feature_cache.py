"""Frozen-feature caching: the head trains on backbone outputs computed once."""

import json
import os

import numpy as np
import pytest

from tftransfer import configs, experiment, loaded_run


def _head_after_training(tiny_params, model_dir, cache, packing):
    params = configs.load([], tiny_params.as_dict())
    params.override(
        {
            "transfer": {"strategy": "frozen", "cache_features": cache},
            "task": {"text_classification": {"dropout": 0.2}},  # the head's RNG draws too
            "data": {"packing": packing},
            "trainer": {"epochs": 3, "learning_rate": 1e-2},
        }
    )
    experiment.train(params, model_dir)
    model = loaded_run.LoadedRun(model_dir, "latest").model
    with open(os.path.join(model_dir, "run_summary.json")) as f:
        summary = json.load(f)
    return model.get_layer("logits").get_weights(), summary


@pytest.mark.parametrize("packing", [False, True])
def test_cached_features_train_the_head_to_the_uncached_weights(tiny_params, tmp_path, packing):
    plain, plain_summary = _head_after_training(
        tiny_params, str(tmp_path / "plain"), False, packing
    )
    cached, summary = _head_after_training(tiny_params, str(tmp_path / "cached"), True, packing)
    assert "feature_cache_seconds" in summary and "feature_cache_seconds" not in plain_summary
    assert sorted(summary["epoch_seconds"]) == ["1", "2", "3"]
    moved = np.abs(plain[0]).max()
    assert moved > 0.05  # the head did train
    for a, b in zip(plain, cached):
        # Packed rows and single rows give the backbone's outputs to float rounding.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 if packing else 1e-6)


def test_a_task_with_a_per_token_head_runs_its_frozen_backbone(tmp_path, tiny_preset):
    from helpers import tiny

    conll = tiny.write_conll(str(tmp_path / "train.conll"))
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"type": "token_classification"},
            "data": {"train": {"path": conll}},
            "transfer": {"strategy": "frozen"},
            "trainer": {"train_steps": 1, "batch_size": 4},
        },
    )
    run = experiment.build(params)
    assert run.feature_cache is None and run.train_model is not None
