"""Transfer strategies on the tiny BERT: what trains, how fast, and what is exported."""

import json
import os
import types

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tftransfer import backbones, compat, configs, experiment, export, loaded_run, transfer

TEXTS = ["great movie", "i hate this film", "really fun story"]


def _backbone_weights(model_dir, checkpoint="latest"):
    """`{path: value}` of the backbone's weights in a run's checkpoint, unmerged."""
    params = configs.from_model_dir(model_dir)
    run = experiment.build(params)
    loaded_run.restore(run.model, model_dir, checkpoint)
    return {v.path: np.array(v) for v in run.backbone.model.weights}, run


def _pretrained(preset):
    model = keras_hub.models.Backbone.from_preset(preset)
    return {v.path: np.array(v) for v in model.weights}


def _train(tiny_params, tmp_path, **transfer_cfg):
    tiny_params.override({"transfer": transfer_cfg, "trainer": {"epochs": 1}})
    model_dir = str(tmp_path / transfer_cfg.get("strategy", "full"))
    experiment.train(tiny_params, model_dir)
    return model_dir


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(
        configs.ConfigError, match="transfer.strategy must be one of: distill, frozen, full"
    ):
        configs.load([], "transfer.strategy=partial")


@pytest.mark.slow
def test_frozen_leaves_every_backbone_weight_bit_identical(tiny_params, tiny_preset, tmp_path):
    model_dir = _train(tiny_params, tmp_path, strategy="frozen")
    after, run = _backbone_weights(model_dir)
    before = _pretrained(tiny_preset)
    assert set(after) == set(before)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    inside = {id(v) for v in run.backbone.model.weights}
    trained = run.model.trainable_variables
    assert trained and not [v.path for v in trained if id(v) in inside]
    # The run records what it trained: the 16 x 2 head and its 2 biases.
    with open(os.path.join(model_dir, "run_summary.json")) as f:
        summary = json.load(f)
    assert summary["strategy"] == "frozen"
    assert summary["trained_parameters"] == 16 * 2 + 2
    assert summary["total_parameters"] > 1000
    assert summary["steps_run"] == 7 and summary["median_step_seconds"] > 0
    assert summary["peak_rss_mb"] > 0
    with open(os.path.join(model_dir, "params.yaml")) as f:
        assert f.readline().startswith("# transfer.strategy frozen: 34 of ")


def _adapted_per_block(model):
    return [
        sorted(
            layer.name
            for layer in compat.flatten_layers(block)
            if getattr(layer, "lora_enabled", False)
        )
        for block in model.transformer_layers
    ]


def _lora(**targets):
    return transfer.get(transfer.TransferConfig(strategy="lora", lora_rank=1, **targets))


def _tiny_bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=5,
        num_layers=2,
        num_heads=1,
        hidden_dim=4,
        intermediate_dim=4,
        max_sequence_length=8,
    )


def test_a_lora_target_a_block_lacks_names_the_block_and_the_layers_it_has():
    bert = _tiny_bert()
    backbone = types.SimpleNamespace(model=bert)
    with pytest.raises(
        configs.ConfigError,
        match=r"^transfer.lora_targets: `attention_out` is no layer of BertBackbone's block "
        r"`transformer_layer_0`, whose layers that take adapters are attention_output, "
        r"feedforward_intermediate_dense, feedforward_output_dense, key, query, value$",
    ):
        _lora(lora_targets=["query", "attention_out"]).prepare(None, backbone)
    # A name of the default list is no exception when chosen: BERT's blocks have no gate.
    with pytest.raises(configs.ConfigError, match="`feedforward_gate_dense` is no layer"):
        _lora(lora_targets=["query", "feedforward_gate_dense"]).prepare(None, backbone)
    assert _adapted_per_block(bert) == [[], []]  # nothing adapted before the error


def test_the_default_lora_targets_adapt_every_projection_each_family_has():
    bert = _tiny_bert()
    _lora().prepare(None, types.SimpleNamespace(model=bert))
    projections = ["attention_output", "feedforward_intermediate_dense", "feedforward_output_dense"]
    projections += ["key", "query", "value"]
    assert _adapted_per_block(bert) == [projections] * 2  # BERT has no gate
    llama = keras_hub.models.Llama3Backbone(
        vocabulary_size=8,
        num_layers=2,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=8,
        intermediate_dim=8,
    )
    _lora().prepare(None, types.SimpleNamespace(model=llama))
    assert _adapted_per_block(llama) == [sorted(projections + ["feedforward_gate_dense"])] * 2


@pytest.mark.slow
def test_lora_trains_adapters_and_head_and_exports_the_merged_model(
    tiny_params, tiny_preset, tmp_path
):
    model_dir = _train(tiny_params, tmp_path, strategy="lora", lora_rank=2, lora_alpha=4.0)
    after, run = _backbone_weights(model_dir)
    before = _pretrained(tiny_preset)
    adapters = sorted(p for p in after if "lora_kernel" in p)
    # query, key, value, attention_output and both feed-forward layers of 2 blocks
    assert len(adapters) == 2 * 6 * 2
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert any(np.abs(after[p]).max() > 0 for p in adapters if p.endswith("lora_kernel_b"))
    inside = {id(v) for v in run.backbone.model.weights}
    trained = [v.path for v in run.model.trainable_variables if id(v) in inside]
    assert sorted(trained) == adapters

    # The adapted model (kernel + A @ B computed at each call) against the export.
    serve, _ = run.task.serving_functions(run.model, run.backbone)["serving_default"]
    adapted = serve(tf.constant(TEXTS))["probabilities"].numpy()
    path = export.export_run(model_dir, str(tmp_path / "serving"), checkpoint="latest")
    saved = [
        name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))
    ]
    assert saved and not [name for name in saved if "lora" in name]
    served = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"].numpy(), adapted, atol=1e-5)
    plain = _pretrained(tiny_preset)
    merged = loaded_run.LoadedRun(model_dir, "latest").backbone.model
    assert len(merged.weights) == len(plain)


@pytest.mark.slow
def test_llrd_gives_each_layer_its_rate(tiny_params):
    tiny_params.override(
        {
            "transfer": {"strategy": "llrd", "llrd_decay": 0.5},
            "trainer": {"warmup_ratio": 0.0, "weight_decay": 0.0, "learning_rate": 1e-3},
        }
    )
    run = experiment.build(tiny_params, total_steps=100)
    depth = transfer.LayerDepths(run.model, run.backbone)
    assert depth.num_layers == 2
    before = [np.array(v) for v in run.model.trainable_variables]
    features, labels = next(iter(run.train_dataset()))
    grads_tape = tf.GradientTape()
    with grads_tape:
        step_model = run.train_model or run.model  # what the trainer calls (packed rows)
        loss = tf.reduce_mean(run.task.loss(labels, step_model(features, training=True)))
    grads = grads_tape.gradient(loss, run.model.trainable_variables)
    run.optimizer.apply(
        [tf.convert_to_tensor(g) for g in grads if g is not None],
        [v for g, v in zip(grads, run.model.trainable_variables) if g is not None],
    )
    seen = set()
    for variable, old, grad in zip(run.model.trainable_variables, before, grads):
        if grad is None:
            continue
        grad = np.array(tf.convert_to_tensor(grad))
        # Adam's first step moves each weight by rate * |g| / (|g| + eps / sqrt(1 - beta_2)).
        big = np.abs(grad) > 1e-6
        if not big.any():
            continue
        step = np.abs(np.array(variable) - old)[big]
        rate = 1e-3 * 0.5 ** (depth.top - depth(variable))
        g = np.abs(grad[big])
        expected = rate * g / (g + 1e-6 / np.sqrt(1 - 0.999))
        # (float32 resolution of weights near 1 is about 1e-7.)
        np.testing.assert_allclose(step, expected, rtol=1e-2, atol=3e-7, err_msg=variable.path)
        seen.add(depth(variable))
    assert seen == {0, 1, 2, 3}


@pytest.mark.slow
def test_gradual_unfreezing_follows_its_schedule(tiny_params, tiny_preset, tmp_path):
    # 7 steps, one more layer every 2: the head alone, then block 2, block 1, embeddings.
    tiny_params.override(
        {
            "transfer": {"strategy": "gradual_unfreezing", "unfreeze_every": 2},
            "trainer": {"epochs": 1, "checkpoint_every": 2, "keep_checkpoints": 10},
        }
    )
    model_dir = str(tmp_path / "run")
    experiment.train(tiny_params, model_dir)
    run = experiment.build(tiny_params)
    assert run.total_steps == 7
    depth = transfer.LayerDepths(run.model, run.backbone)
    previous = _pretrained(tiny_preset)
    moved = []
    for step in (2, 4, 6, 7):
        path = os.path.join(model_dir, "checkpoints", f"ckpt-{step}")
        tf.train.Checkpoint(model=run.model).read(path).expect_partial()
        current = {v.path: np.array(v) for v in run.backbone.model.weights}
        moved.append(
            {
                depth(v)
                for v in run.backbone.model.weights
                if not np.array_equal(current[v.path], previous[v.path])
            }
        )
        previous = current
    # (The pooler, at the top, gets no gradient under mean pooling.)
    assert moved == [set(), {2}, {1, 2}, {0, 1, 2}]


@pytest.mark.slow
def test_scratch_starts_from_random_weights(tiny_params, tiny_preset):
    tiny_params.override({"transfer": {"strategy": "scratch"}})
    keras.utils.set_random_seed(1)
    run = experiment.build(tiny_params, total_steps=1)
    pretrained = _pretrained(tiny_preset)
    built = {v.path: np.array(v) for v in run.backbone.model.weights}
    kernels = [p for p in pretrained if p.endswith("kernel")]
    assert kernels
    for path in kernels:
        assert not np.allclose(built[path], pretrained[path]), path
    assert isinstance(run.backbone, backbones.Backbone)
