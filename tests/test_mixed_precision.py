"""`runtime.mixed_precision`: bfloat16 and float16 training next to float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny

from tftransfer import configs, experiment
from tftransfer.training import history, precision


def _losses(model_dir):
    return np.array([r["loss"] for r in history.read(model_dir) if "loss" in r])


@pytest.fixture(scope="module")
def fp32_run(tiny_preset, sentiment_tsv, tmp_path_factory):
    """The float32 curve every mixed-precision run is compared with (trained once)."""
    tiny_params = tiny.classification_params(tiny_preset, sentiment_tsv)
    # Not packed: the mirrored run cannot pack, and its curve is compared with this one.
    tiny_params.override(
        {
            "trainer": {"epochs": 2, "log_every": 1},
            "data": {"validation": {"path": ""}, "packing": False},
        }
    )
    model_dir = str(tmp_path_factory.mktemp("fp32"))
    experiment.train(tiny_params, model_dir)
    return tiny_params, _losses(model_dir)


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy,strategy",
    [("bfloat16", "one_device"), ("float16", "one_device"), ("float16", "mirrored")],
)
def test_mixed_precision_trains_close_to_float32(fp32_run, tmp_path, policy, strategy):
    params, fp32 = fp32_run
    params = params.replace(runtime={"mixed_precision": policy, "distribution_strategy": strategy})
    keras.utils.set_random_seed(params.trainer.seed)  # the fp32 run's head initialisation
    run = experiment.build(params)
    layer = run.backbone.model.get_layer("transformer_layer_0")
    assert layer.compute_dtype == precision.policy_name(policy).split("_")[1]
    assert all(v.dtype == "float32" for v in run.model.weights if v.dtype != "string")
    assert run.model.get_layer("logits").compute_dtype == "float32"
    model_dir = str(tmp_path / policy)
    experiment.fit(run, model_dir)

    mixed = _losses(model_dir)
    assert len(mixed) == len(fp32) and np.all(np.isfinite(mixed))
    # bfloat16 keeps 8 bits of mantissa, float16 11: the curves agree to a
    # few percent, and the model learns as float32 does.
    np.testing.assert_allclose(mixed, fp32, rtol=0.05, atol=0.02)
    assert mixed[-3:].mean() < mixed[:3].mean()
    # A float32 model built afterwards is float32 again (the policy was scoped).
    assert keras.config.dtype_policy().name == "float32"


def test_float16_scale_halves_and_skips_an_overflowing_step():
    scale = precision.DynamicLossScale(initial_scale=8.0, growth_steps=2)
    scale.update(tf.constant(False))
    assert float(scale.scale) == 4.0
    scale.update(tf.constant(True))
    scale.update(tf.constant(True))
    assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0


def test_unknown_precision_is_a_config_error():
    with pytest.raises(configs.ConfigError, match="runtime.mixed_precision must be one of"):
        configs.load([], "runtime.mixed_precision=int8")


@pytest.mark.slow
def test_float16_overflowing_steps_are_skipped_until_the_scale_fits(tiny_params, tmp_path):
    tiny_params.override(
        {
            "runtime": {"mixed_precision": "float16"},
            "trainer": {"train_steps": 6, "log_every": 1},
            "data": {"validation": {"path": ""}},
        }
    )
    run = experiment.build(tiny_params)
    with run.strategy.scope():
        # float16 holds up to 65504: gradients scaled by 2**40 overflow.
        run.loss_scale = precision.DynamicLossScale(initial_scale=2.0**40)
    experiment.fit(run, str(tmp_path / "run"))
    assert int(run.optimizer.iterations) == 6  # skipped steps are not counted
    assert float(run.loss_scale.scale) < 2.0**40
    assert all(np.all(np.isfinite(w.numpy())) for w in run.model.weights if w.dtype != "string")


@pytest.mark.slow
def test_a_float32_run_resumes_in_float16_and_back(tiny_params, tmp_path):
    tiny_params.override(
        {"trainer": {"train_steps": 4, "checkpoint_every": 2}, "data": {"validation": {"path": ""}}}
    )
    model_dir = str(tmp_path / "run")
    experiment.train(tiny_params, model_dir)
    for policy, steps in (("float16", 6), ("bfloat16", 8)):
        tiny_params.override(
            {"runtime": {"mixed_precision": policy}, "trainer": {"train_steps": steps}}
        )
        experiment.train(tiny_params, model_dir)
        assert max(r["step"] for r in history.read(model_dir) if "loss" in r) == steps
