"""The fused AdamW update equals Keras' AdamW."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.training import optimization


# A rate of 0 skips the decay's pass over the weights; the update is still Keras'.
@pytest.mark.parametrize("weight_decay", [0.1, 0.0])
def test_fused_update_equals_keras_adamw(weight_decay):
    rng = np.random.default_rng(0)
    shapes = {"kernel": (7, 5), "bias": (5,), "embeddings": (11, 5)}
    start = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    settings = dict(
        learning_rate=1e-2, weight_decay=weight_decay, beta_1=0.8, beta_2=0.99, epsilon=1e-6
    )
    results = []
    for optimizer_class in (optimization.PreReducedAdamW, keras.optimizers.AdamW):
        variables = [keras.Variable(start[k], name=k) for k in shapes]
        optimizer = optimizer_class(**settings)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        optimizer.build(variables)
        step_rng = np.random.default_rng(1)
        for _ in range(4):
            grads = [tf.constant(step_rng.normal(size=shapes[k]), tf.float32) for k in shapes]
            optimizer.apply(grads, variables)
        results.append([v.numpy() for v in variables])
    for fused, reference, name in zip(*results, shapes):
        assert np.abs(fused - start[name]).max() > 1e-3  # the weights moved
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-6, err_msg=name)


def test_layerwise_rates_scale_the_adam_step_and_the_weight_decay_of_their_variables():
    # A factor f on a variable's rate is Keras' AdamW at f times the rate for it: the
    # Adam step and the decoupled weight decay (the `_apply_weight_decay` override) alike.
    rng = np.random.default_rng(0)
    shapes = {"kernel": (7, 5), "bias": (5,), "embeddings": (11, 5)}
    factors = {"kernel": 0.5, "bias": 1.0, "embeddings": 0.25}
    start = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    grads = [{k: rng.normal(size=s).astype("float32") for k, s in shapes.items()} for _ in range(3)]
    settings = dict(weight_decay=0.1, beta_1=0.8, beta_2=0.99, epsilon=1e-6)

    variables = {k: keras.Variable(start[k], name=k) for k in shapes}
    optimizer = optimization.PreReducedAdamW(learning_rate=1e-2, **settings)
    optimizer.build(list(variables.values()))
    optimizer.set_learning_rate_factors({id(variables[k]): f for k, f in factors.items()})
    for step in grads:
        optimizer.apply([tf.constant(step[k]) for k in shapes], list(variables.values()))
    for name, factor in factors.items():
        reference = keras.Variable(start[name], name=name)
        keras_adamw = keras.optimizers.AdamW(learning_rate=1e-2 * factor, **settings)
        for step in grads:
            keras_adamw.apply([tf.constant(step[name])], [reference])
        assert np.abs(reference.numpy() - start[name]).max() > 1e-3  # the weights moved
        np.testing.assert_allclose(
            variables[name].numpy(), reference.numpy(), rtol=1e-5, atol=1e-6, err_msg=name
        )
