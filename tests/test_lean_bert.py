"""The fast BERT block computes keras-hub's block: outputs and gradients, LoRA, opt-out."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tftransfer import backbones, compat
from tftransfer.backbones.lean_bert import LeanBert


def _encoder(normalize_first=False, exact_gelu=True):
    layer = keras_hub.layers.TransformerEncoder(
        intermediate_dim=12,
        num_heads=2,
        dropout=0.1,
        activation=compat.exact_gelu if exact_gelu else "relu",
        normalize_first=normalize_first,
    )
    layer.build([None, None, 8])
    rng = np.random.default_rng(0)
    for v in layer.weights:
        v.assign(rng.normal(1.0 if "gamma" in v.path else 0.0, 0.4, v.shape).astype("float32"))
    return layer


def _inputs():
    """Two rows: three examples packed into the first, one and padding in the second."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 6, 8)), tf.float32)
    example_ids = tf.constant([[0, 0, 1, 1, 1, 2], [3, 3, 3, -1, -1, -1]])
    mask = tf.logical_and(
        tf.equal(example_ids[:, :, None], example_ids[:, None, :]),
        (example_ids >= 0)[:, None, :],
    )
    return x, mask, (example_ids >= 0).numpy()


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("exact_gelu", [True, False])
def test_outputs_and_gradients_equal_keras_hubs_block(normalize_first, exact_gelu):
    layer = _encoder(normalize_first, exact_gelu)
    x, mask, real = _inputs()
    results = []
    for forward in (
        lambda: LeanBert.encoder_layer(layer, x, mask),
        lambda: layer(x, attention_mask=mask),
    ):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward()
            # Padding rows see no key: their outputs are never read (keras
            # zeroes their attention, the fast block spreads it evenly).
            loss = tf.reduce_sum(tf.boolean_mask(y, real) ** 2)
        results.append((tf.boolean_mask(y, real), tape.gradient(loss, [x] + layer.weights)))
    (lean, lean_grads), (want, want_grads) = results
    np.testing.assert_allclose(lean, want, atol=1e-5)
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in want_grads)
    for got, expected, v in zip(lean_grads, want_grads, [x] + layer.weights):
        name = getattr(v, "path", "x")
        np.testing.assert_allclose(got, expected, atol=1e-5 * scale, err_msg=name)


def test_lora_weights_get_the_same_gradients():
    layer = _encoder()
    for sub in (layer._self_attention_layer._query_dense, layer._feedforward_intermediate_dense):
        sub.enable_lora(2)
    rng = np.random.default_rng(2)
    for v in layer.trainable_weights:
        if "lora" in v.path:
            v.assign(rng.normal(0.0, 0.4, v.shape).astype("float32"))
    x, mask, real = _inputs()
    grads = []
    for forward in (LeanBert.encoder_layer, lambda la, x, m: la(x, attention_mask=m)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.boolean_mask(forward(layer, x, mask), real) ** 2)
        grads.append(tape.gradient(loss, layer.trainable_weights))
    lora = [i for i, v in enumerate(layer.trainable_weights) if "lora" in v.path]
    assert len(lora) == 4
    for i in lora:
        np.testing.assert_allclose(grads[0][i], grads[1][i], atol=1e-4)


def test_bfloat16_outputs_stay_close_to_float32():
    layer = _encoder()
    x, mask, real = _inputs()
    want = tf.boolean_mask(layer(x, attention_mask=mask), real)
    layer_16 = keras_hub.layers.TransformerEncoder(
        intermediate_dim=12, num_heads=2, activation=compat.exact_gelu, dtype="mixed_bfloat16"
    )
    layer_16.build([None, None, 8])
    layer_16.set_weights(layer.get_weights())
    got = LeanBert.encoder_layer(layer_16, tf.cast(x, tf.bfloat16), mask)
    assert got.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(tf.boolean_mask(got, real), tf.float32), want, atol=0.1)


def test_fast_forward_off_runs_keras_hubs_layers(tiny_preset, monkeypatch):
    backbone, _ = backbones.load(tiny_preset)
    wrapped = backbones.Backbone.wrap(backbone)
    features = {
        "token_ids": tf.constant([[2, 5, 6, 3, 2, 7, 3]]),
        "segment_ids": tf.zeros([1, 7], tf.int32),
        "position_ids": tf.constant([[0, 1, 2, 3, 0, 1, 2]]),
        "example_ids": tf.constant([[0, 0, 0, 0, 1, 1, 1]]),
    }
    fast = wrapped.packed_sequence_output(features)
    calls = []
    real = LeanBert.encoder_layer
    monkeypatch.setattr(LeanBert, "encoder_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    backbone._tftransfer_fast_forward = False
    keras_hubs = wrapped.packed_sequence_output(features)
    assert not calls
    np.testing.assert_allclose(fast, keras_hubs, atol=1e-5)
