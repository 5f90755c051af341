"""The fast BERT block computes keras-hub's block: outputs and gradients, LoRA, opt-out."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tftransfer import backbones, compat
from tftransfer.backbones.lean_bert import LeanBert
from tftransfer.models.serving_weights import ServingWeights, captured_variables


def _encoder(normalize_first=False, exact_gelu=True, dropout=0.1, dtype=None):
    layer = keras_hub.layers.TransformerEncoder(
        intermediate_dim=12,
        num_heads=2,
        dropout=dropout,
        activation=compat.exact_gelu if exact_gelu else "relu",
        normalize_first=normalize_first,
        dtype=dtype,
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


class _LeanCall(keras.layers.Layer):
    """The fast block called from a Keras layer's call, as the backbone calls it.

    Under mixed precision Keras then reads the float32 weights in the compute
    dtype (autocasting), as in training.
    """

    def __init__(self, block):
        super().__init__(dtype=block.dtype_policy)
        self.block = block

    def call(self, x, mask, training=False):
        return LeanBert.encoder_layer(self.block, x, mask, training=training)


def _outputs_and_gradients(layer, x, mask, real, training=False):
    """`[(outputs of real tokens, gradients of x and the weights)]`: the fast block, keras-hub's."""
    results = []
    lean = _LeanCall(layer)
    for forward in (
        lambda: lean(x, mask, training=training),
        lambda: layer(x, attention_mask=mask, training=training),
    ):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward()
            # Padding rows see no key: their outputs are never read (keras
            # zeroes their attention, the fast block spreads it evenly).
            loss = tf.reduce_sum(tf.boolean_mask(y, real) ** 2)
        results.append((tf.boolean_mask(y, real), tape.gradient(loss, [x] + layer.weights)))
    return results


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("exact_gelu", [True, False])
# Keras' attention takes another path without dropout (a float32 softmax);
# training takes the fused chains (its dropout draws other masks: none here).
@pytest.mark.parametrize("dropout,training", [(0.1, False), (0.0, False), (0.0, True)])
def test_outputs_and_gradients_equal_keras_hubs_block(
    normalize_first, exact_gelu, dropout, training
):
    layer = _encoder(normalize_first, exact_gelu, dropout)
    x, mask, real = _inputs()
    results = _outputs_and_gradients(layer, x, mask, real, training=training)
    (lean, lean_grads), (want, want_grads) = results
    np.testing.assert_allclose(lean, want, atol=1e-5)
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in want_grads)
    for got, expected, v in zip(lean_grads, want_grads, [x] + layer.weights):
        name = getattr(v, "path", "x")
        np.testing.assert_allclose(got, expected, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("dropout,training", [(0.1, False), (0.0, False), (0.0, True)])
def test_outputs_at_some_positions_equal_the_full_blocks_there(normalize_first, dropout, training):
    # A classifier's last block computes only its texts' first tokens: the
    # same outputs and gradients as the whole block read there.
    layer = _encoder(normalize_first, dropout=dropout)
    x, mask, _ = _inputs()
    at = tf.constant([0, 2, 5, 6])  # each example's first token, flattened
    results = []
    for some in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if some:
                y = LeanBert.encoder_layer(layer, x, mask, training, outputs_at=at)
            else:
                y = tf.gather(
                    tf.reshape(LeanBert.encoder_layer(layer, x, mask, training), [-1, 8]), at
                )
            loss = tf.reduce_sum(y**2)
        results.append((y, tape.gradient(loss, [x] + layer.weights)))
    (got, got_grads), (want, want_grads) = results[1], results[0]
    assert got.shape == (4, 8)
    np.testing.assert_allclose(got, want, atol=1e-5)
    for g, w, v in zip(got_grads, want_grads, [x] + layer.weights):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=getattr(v, "path", "x"))


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


# Training with dropout draws other masks in each: compared without dropout.
@pytest.mark.parametrize("dropout,training", [(0.1, False), (0.0, False), (0.0, True)])
def test_bfloat16_matches_keras_hubs_bfloat16_block(dropout, training):
    layer = _encoder(dropout=dropout, dtype="mixed_bfloat16")
    x, mask, real = _inputs()
    x = tf.cast(x, tf.bfloat16)
    results = _outputs_and_gradients(layer, x, mask, real, training=training)
    (lean, lean_grads), (want, want_grads) = results
    assert lean.dtype == tf.bfloat16
    # bfloat16 keeps 8 bits: one rounding step is 1/128 of the value's size.
    np.testing.assert_allclose(tf.cast(lean, "float32"), tf.cast(want, "float32"), atol=0.05)
    scale = max(float(tf.reduce_max(tf.abs(tf.cast(g, "float32")))) for g in want_grads)
    for got, expected in zip(lean_grads, want_grads):
        np.testing.assert_allclose(
            tf.cast(got, "float32"), tf.cast(expected, "float32"), atol=0.03 * scale
        )


def test_training_draws_fresh_dropout_masks_from_the_layers_seeds():
    # `lean_dropout` draws other masks than keras-hub's own from the same seeds,
    # so checked by what dropout does rather than against keras-hub.
    layer = _encoder(dropout=0.5)
    x, mask, _ = _inputs()
    plain = LeanBert.encoder_layer(layer, x, mask)
    first, second = (LeanBert.encoder_layer(layer, x, mask, training=True) for _ in range(2))
    assert not np.allclose(first, plain) and not np.allclose(first, second)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_an_export_reads_weights_prepared_once_and_computes_the_same(dtype):
    layer = _encoder(dropout=0.0, dtype=dtype)
    x, mask, _ = _inputs()
    x = tf.cast(x, layer.compute_dtype)

    def serve(x):
        return LeanBert.encoder_layer(layer, x, mask)

    want = tf.function(serve)(x)
    weights = ServingWeights()
    with weights.scope():
        exported = tf.function(serve).get_concrete_function(x)
    # The graph reads no kernel: the prepared copies (concatenated, cast,
    # bias rows appended) replace them.
    read = {v.ref() for v in captured_variables([exported])}
    kernels = {w.value.ref() for w in layer.weights if "kernel" in w.path}
    assert not read & kernels and {v.ref() for v in weights.variables} <= read
    if dtype == "float32":
        np.testing.assert_array_equal(exported(x), want)
    else:  # kernels stored transposed: the summation order may change
        np.testing.assert_allclose(
            tf.cast(exported(x), "float32"), tf.cast(want, "float32"), rtol=2e-2, atol=2e-2
        )


def test_blocks_it_cannot_compute_keep_keras_hubs_layers():
    sizes = dict(vocabulary_size=11, num_layers=1, intermediate_dim=8, max_sequence_length=8)
    # 10 wide, 3 heads: keras-hub's heads are 3 wide, 9 in all.
    uneven = keras_hub.models.BertBackbone(num_heads=3, hidden_dim=10, **sizes)
    quantized = keras_hub.models.BertBackbone(num_heads=2, hidden_dim=8, **sizes)
    quantized.quantize("int8")
    plain = keras_hub.models.BertBackbone(num_heads=2, hidden_dim=8, **sizes)
    assert LeanBert.supports(plain)
    assert not LeanBert.supports(uneven)
    assert not LeanBert.supports(quantized)


def test_fast_forward_off_runs_keras_hubs_layers(tiny_preset, monkeypatch):
    backbone, _ = backbones.load(tiny_preset)
    wrapped = backbones.Backbone.wrap(backbone)
    features = {
        "token_ids": tf.constant([[2, 5, 6, 3, 2, 7, 3]]),
        "segment_ids": tf.zeros([1, 7], tf.int32),
        "position_ids": tf.constant([[0, 1, 2, 3, 0, 1, 2]]),
        "example_ids": tf.constant([[0, 0, 0, 0, 1, 1, 1]]),
    }
    calls = []
    real = LeanBert.encoder_layer
    monkeypatch.setattr(LeanBert, "encoder_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = wrapped.packed_sequence_output(features)
    assert len(calls) == len(backbone.transformer_layers)
    backbone._tftransfer_fast_forward = False
    keras_hubs = wrapped.packed_sequence_output(features)
    assert len(calls) == len(backbone.transformer_layers)
    np.testing.assert_allclose(fast, keras_hubs, atol=1e-5)
