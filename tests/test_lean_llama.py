"""The lean Llama decoding step computes what keras-hub's Llama computes."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tftransfer.models import token_loss
from tftransfer.models.lean_llama import LeanCausalLM, LeanLlama
from tftransfer.models.serving_weights import ServingWeights, captured_variables
from tftransfer.training import precision

ROPE_31 = dict(  # Llama 3.1's frequency-adjusted rope
    rope_max_wavelength=500000,
    rope_frequency_adjustment_factor=8.0,
    rope_low_freq_factor=1.0,
    rope_high_freq_factor=4.0,
    rope_pretraining_sequence_length=16,
)


def _llama(hidden_dim=24, **rope):
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=50,
        num_layers=2,
        num_query_heads=6,
        num_key_value_heads=2,
        hidden_dim=hidden_dim,  # 6 heads of 4: a power-of-two attention scale (1/2)
        intermediate_dim=40,
        **rope,
    )
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)


@pytest.mark.parametrize("rope", [{}, ROPE_31], ids=["rope", "rope_llama3.1"])
def test_prompt_and_token_steps_match_the_full_forward_pass(rope):
    lm = _llama(**rope)
    ids = tf.constant([[3, 7, 9, 11, 13, 2, 5], [4, 4, 8, 1, 30, 31, 32]])
    reference = np.asarray(lm({"token_ids": ids, "padding_mask": tf.ones_like(ids)}))
    step = LeanLlama(lm)
    cache = step.read_prompts(ids[:, :4], total=10)
    prompt_logits, _ = step.step(ids[:, :4], tuple(tf.zeros_like(c) for c in cache), 0)
    np.testing.assert_allclose(prompt_logits, reference[:, :4], atol=1e-6)
    for i in range(4, 7):
        logits, cache = step.step(ids[:, i : i + 1], cache, i)
        np.testing.assert_allclose(logits[:, 0], reference[:, i], atol=1e-6)


def test_bfloat16_steps_outside_a_keras_call_compute_in_bfloat16():
    # Evaluation and decoding call the step outside any Keras `call`, where
    # nothing autocasts the float32 kernels (a bfloat16 run failed evaluating).
    with precision.dtype_policy("mixed_bfloat16"):
        lm = _llama()
    ids = tf.constant([[3, 7, 9, 11, 13, 2, 5]])
    reference = np.asarray(lm({"token_ids": ids, "padding_mask": tf.ones_like(ids)}), "float32")
    step = LeanLlama(lm)
    logits, cache = step.step(ids, step.read_prompts(ids[:, :1], total=7), 0)
    assert logits.dtype == cache[0].dtype == tf.bfloat16
    forward = LeanLlama(lm).forward(ids, tf.ones_like(ids))
    for lean in (logits, forward):
        # bfloat16 keeps 8 bits of mantissa: logits of ~1 agree to a few 1e-2.
        np.testing.assert_allclose(np.asarray(lean, "float32"), reference, atol=0.05)


@pytest.mark.parametrize(
    "policy, compute, tables, tolerance",
    [
        # float32: the tables are read as they are; bfloat16: cast once. Only
        # the summation order may change (the kernels are stored transposed):
        # within a rounding step of the compute type.
        ("float32", tf.float32, 0, 1e-5),
        ("mixed_bfloat16", tf.bfloat16, 2, 2e-2),
    ],
)
def test_an_export_prepares_the_kernels_once_and_computes_the_same(
    policy, compute, tables, tolerance
):
    with precision.dtype_policy(policy):
        lm = _llama()
    ids = tf.constant([[3, 7, 9, 11]])
    step = LeanLlama(lm)

    def serve(ids):  # a prompt of 3 tokens, then one decoding step
        logits, cache = step.step(ids[:, :3], step.read_prompts(ids[:, :1], total=4), 0)
        return tf.concat([logits, step.step(ids[:, 3:], cache, 3)[0]], axis=1)

    want = tf.function(serve)(ids)
    weights = ServingWeights()
    with weights.scope():
        exported = tf.function(serve).get_concrete_function(ids)
    # 7 kernels a layer (transposed), and the token and output tables if cast.
    assert [v.dtype for v in weights.variables] == [compute] * (2 * 7 + tables)
    # The graph reads those, not the layers' kernels.
    read = {v.ref() for v in captured_variables([exported])}
    kernels = {w.value.ref() for w in lm.weights if "kernel" in w.path}
    assert not read & kernels and {v.ref() for v in weights.variables} <= read
    got = exported(ids)
    np.testing.assert_allclose(
        np.asarray(got, "float32"), np.asarray(want, "float32"), rtol=tolerance, atol=tolerance
    )


def test_lora_adapters_are_part_of_the_step():
    lm = _llama()
    lm.backbone.enable_lora(2)
    for weight in lm.backbone.trainable_weights:  # non-zero adapters change the output
        if "lora" in weight.path:
            weight.assign(tf.random.normal(weight.shape, stddev=0.3))
    ids = tf.constant([[3, 7, 9, 11]])
    reference = np.asarray(lm({"token_ids": ids, "padding_mask": tf.ones_like(ids)}))
    step = LeanLlama(lm)
    logits, _ = step.step(ids, step.read_prompts(ids[:, :1], total=4), 0)
    np.testing.assert_allclose(logits, reference, atol=1e-6)


def test_other_families_keep_keras_hubs_layers():
    mistral = keras_hub.models.MistralBackbone(
        vocabulary_size=20,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=8,
        intermediate_dim=8,
    )
    assert not LeanLlama.supports(keras_hub.models.MistralCausalLM(backbone=mistral))
    assert LeanLlama.supports(_llama())


@pytest.mark.parametrize("hidden_dim", [24, 36], ids=["scale_folded", "scale_multiplied"])
def test_training_view_gives_keras_hubs_loss_and_gradients(hidden_dim):
    lm = _llama(hidden_dim)
    view = LeanCausalLM(lm)
    ids = tf.constant([[3, 7, 9, 11, 13, 0], [4, 4, 8, 1, 0, 0]])
    inputs = {"token_ids": ids, "padding_mask": tf.cast(ids > 0, tf.int32)}
    labels = tf.roll(ids, -1, axis=1)

    def loss_and_grads(model):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(nll * tf.cast(inputs["padding_mask"], tf.float32))
        return loss, tape.gradient(loss, lm.trainable_variables)

    assert [v.path for v in view.trainable_variables] == [v.path for v in lm.trainable_variables]
    (loss, grads), (view_loss, view_grads) = loss_and_grads(lm), loss_and_grads(view)
    np.testing.assert_allclose(view_loss, loss, rtol=1e-6)
    # To float32 rounding, relative to each gradient's size: the fused chains
    # sum in another order (an AVX-512 EPYC put one of 1,800 elements 1.2e-6
    # off a gradient of 0.16).
    for grad, view_grad in zip(grads, view_grads):
        np.testing.assert_allclose(
            tf.convert_to_tensor(view_grad), tf.convert_to_tensor(grad), rtol=1e-5, atol=1e-6
        )


def test_bfloat16_training_view_gives_keras_hubs_loss_and_gradients():
    # Mixed precision: the view's logits go to the loss in bfloat16 (the
    # training step leaves them so for `token_loss`), keras-hub's in float32.
    with precision.dtype_policy("mixed_bfloat16"):
        lm = _llama()
    view = LeanCausalLM(lm)
    ids = tf.constant([[3, 7, 9, 11, 13, 0], [4, 4, 8, 1, 0, 0]])
    inputs = {"token_ids": ids, "padding_mask": tf.cast(ids > 0, tf.int32)}
    labels = tf.where(inputs["padding_mask"] > 0, tf.roll(ids, -1, axis=1), -1)

    def loss_and_grads(model, outputs=tf.identity):
        with tf.GradientTape() as tape:
            logits = outputs(model(inputs, training=True))
            loss = tf.reduce_sum(token_loss.per_row_loss(labels, logits))
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, lm.trainable_variables)]

    loss, grads = loss_and_grads(lm, precision.float32_outputs)
    view_loss, view_grads = loss_and_grads(view)
    assert view(inputs).dtype == tf.bfloat16
    assert all(g.dtype == tf.float32 for g in view_grads)
    np.testing.assert_allclose(view_loss, loss, rtol=1e-2)
    for grad, view_grad, variable in zip(grads, view_grads, lm.trainable_variables):
        # bfloat16 keeps 8 bits: a few roundings apart, relative to the largest entry.
        scale = float(tf.reduce_max(tf.abs(grad)))
        np.testing.assert_allclose(view_grad, grad, atol=3e-2 * scale, err_msg=variable.path)


def test_dropout_keeps_keras_hubs_layers_in_training():
    lm = _llama()
    assert LeanLlama.supports(lm, training=True)
    lm.backbone.dropout = 0.1
    assert not LeanLlama.supports(lm, training=True)
    assert LeanLlama.supports(lm)  # generation has no dropout


def test_backbone_fast_forward_off_keeps_keras_hubs_layers_everywhere(llama_dir):
    from tftransfer import backbones, configs
    from tftransfer.tasks.causal_lm import CausalLM, CausalLMConfig

    def built(fast_forward):
        cfg = configs.BackboneConfig(spec=llama_dir, fast_forward=fast_forward)
        backbone, tokenizer = backbones.from_config(cfg)
        return backbone.causal_lm(), CausalLM(CausalLMConfig(max_length=32), tokenizer)

    fast, task = built("auto")
    plain, _ = built("off")
    assert LeanLlama.supports(fast, training=True) and not LeanLlama.supports(plain)
    one_device = tf.distribute.get_strategy()
    assert task.build_train_model(plain, plain.backbone, one_device) is None  # training asks here
    # `score` (the export's signature) takes the same path as evaluation, and
    # both paths give the checkpoint's numbers.
    texts = tf.constant(["the king", "a b c d e f"])
    fast_score = task.score(fast, texts)["mean_log_likelihood"].numpy()
    plain_score = task.score(plain, texts)["mean_log_likelihood"].numpy()
    np.testing.assert_allclose(fast_score, plain_score, rtol=1e-5)
