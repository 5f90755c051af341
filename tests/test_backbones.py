import socket
from math import erf as _erf

import keras
import numpy as np
import pytest

from tftransfer import backbones, compat, configs
from tftransfer.backbones import hf_folder

erf = np.vectorize(_erf)


def test_local_preset_folder(tiny_preset):
    backbone, tokenizer = backbones.load(tiny_preset)
    assert backbone.num_layers == 2
    ids = tokenizer(["great movie"])
    assert [tokenizer.id_to_token(int(i)) for i in ids[0]] == ["great", "movie"]


def test_random_init_keeps_architecture_not_weights(tiny_preset):
    loaded, _ = backbones.load(tiny_preset)
    fresh, _ = backbones.load(tiny_preset, random_init=True)
    assert [w.shape for w in loaded.weights] == [w.shape for w in fresh.weights]
    assert not all(np.allclose(a, b) for a, b in zip(loaded.get_weights(), fresh.get_weights()))


def test_exact_gelu_switch(tiny_preset):
    approx, _ = backbones.load(tiny_preset, exact_gelu=False)
    exact, _ = backbones.load(tiny_preset, exact_gelu=True)
    dense = exact.transformer_layers[0]._feedforward_intermediate_dense
    x = np.linspace(-3, 3, 7).astype("float32")
    y_exact = keras.ops.convert_to_numpy(dense.activation(x))
    np.testing.assert_allclose(y_exact, x * (1 + erf(x / np.sqrt(2))) / 2, atol=1e-6)
    y_approx = keras.ops.convert_to_numpy(
        approx.transformer_layers[0]._feedforward_intermediate_dense.activation(x)
    )
    assert not np.allclose(y_exact, y_approx, atol=1e-5)


def test_exact_gelu_keeps_16_bit_types_and_float32_accuracy():
    # Under mixed precision the activation must return the layer's compute
    # type, with the accuracy of the float32 function before the last cast.
    x = np.linspace(-4, 4, 33).astype("float32")
    for dtype in ("bfloat16", "float16"):
        y = compat.exact_gelu(keras.ops.cast(x, dtype))
        assert keras.backend.standardize_dtype(y.dtype) == dtype
        rounded = keras.ops.cast(keras.ops.cast(x, dtype), "float32")
        expected = keras.ops.cast(keras.activations.gelu(rounded), dtype)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), expected)


def test_missing_and_invalid_folders(tmp_path):
    with pytest.raises(backbones.BackboneError, match="does not exist"):
        backbones.load(str(tmp_path / "nope") + "/")
    with pytest.raises(backbones.BackboneError, match="neither metadata.json"):
        backbones.load(str(tmp_path))


def test_hf_folder_options_follow_the_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_act": "gelu_new"}')
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    assert hf_folder.strip_accents(str(tmp_path)) is True
    assert hf_folder.exact_gelu(str(tmp_path)) is False
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    assert hf_folder.strip_accents(str(tmp_path)) is False


def test_llama_folders_keep_their_rms_norm_epsilon(llama_dir):
    # keras-hub's converter would fall back to its default of 1e-6.
    backbone, _ = backbones.load(llama_dir)
    assert backbone.layer_norm_epsilon == pytest.approx(1e-5)
    assert hf_folder.backbone_kwargs({"model_type": "bert", "rms_norm_eps": 1e-5}) == {}


def _online():
    try:
        socket.getaddrinfo("api.kaggle.com", 443)
        return True
    except OSError:
        return False


@pytest.mark.skipif(_online(), reason="online: would download a 400 MB preset")
def test_named_preset_offline_gives_clear_error():
    with pytest.raises(backbones.BackboneError, match="offline, pass a local preset folder"):
        backbones.load("bert_base_en_uncased")


def test_keep_layers_runs_the_chosen_pretrained_blocks(tiny_preset):
    full, _ = backbones.load(tiny_preset, exact_gelu=True)
    first, _ = backbones.load(tiny_preset, exact_gelu=True, keep_layers=1)
    assert first.num_layers == 1 and first.tftransfer_exact_gelu
    # BERT has no norm after its last block: one kept block's output is the
    # full model's hidden state after block 0.
    after_block_0 = keras.Model(full.inputs, full.transformer_layers[0].output)
    features = {
        "token_ids": np.array([[2, 5, 7, 3, 0]]),
        "segment_ids": np.zeros((1, 5), "int32"),
        "padding_mask": np.array([[1, 1, 1, 1, 0]]),
    }
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first(features)["sequence_output"]),
        keras.ops.convert_to_numpy(after_block_0(features)),
        atol=1e-6,
    )
    second, _ = backbones.load(tiny_preset, keep_layers=[1])
    for a, b in zip(second.transformer_layers[0].weights, full.transformer_layers[1].weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        second.token_embedding.embeddings, full.token_embedding.embeddings
    )
    assert backbones.load(tiny_preset, keep_layers=[0, 1])[0].num_layers == 2


def test_keep_layers_of_a_llama_keeps_its_settings(llama_dir):
    full, _ = backbones.load(llama_dir)
    kept, _ = backbones.load(llama_dir, keep_layers=[1])
    assert kept.num_layers == 1
    assert kept.tie_word_embeddings == full.tie_word_embeddings
    assert kept.layer_norm_epsilon == pytest.approx(1e-5)
    for a, b in zip(kept.transformer_layers[0].weights, full.transformer_layers[1].weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(kept.layer_norm.weights[0], full.layer_norm.weights[0])


@pytest.mark.parametrize(
    "keep, message",
    [
        (3, "must be >= 1 and <= 2, got 3"),
        (0, "must be >= 1 and <= 2, got 0"),
        ([1, 0], "distinct blocks in order"),
        ([0, 0], "distinct blocks in order"),
        ([2], "blocks 0 to 1, got [2]"),
        ([], "must list block indices"),
        ("two", "a count of first blocks or a list"),
    ],
)
def test_keep_layers_errors_name_the_key(tiny_preset, keep, message):
    with pytest.raises(configs.ConfigError, match="backbone.keep_layers") as error:
        backbones.load(tiny_preset, keep_layers=keep)
    assert message in str(error.value)


def test_config_checks_keep_layers_before_loading(tiny_params):
    tiny_params.override({"backbone": {"keep_layers": [1, 0]}})
    with pytest.raises(configs.ConfigError, match="backbone.keep_layers must list distinct"):
        configs.validate(tiny_params)
    tiny_params.override({"backbone": {"keep_layers": 0}})
    with pytest.raises(configs.ConfigError, match=r"backbone.keep_layers must be >= 1, got 0$"):
        configs.validate(tiny_params)
    tiny_params.override({"backbone": {"keep_layers": [-1]}})
    with pytest.raises(configs.ConfigError, match=r"block indices start at 0, got \[-1\]"):
        configs.validate(tiny_params)


@pytest.mark.slow
def test_a_run_on_kept_layers_trains_and_reloads(tiny_params, tmp_path):
    from tftransfer import experiment, loaded_run

    tiny_params.override({"backbone": {"keep_layers": [1]}})
    experiment.train(tiny_params, str(tmp_path))
    loaded = loaded_run.LoadedRun(str(tmp_path))
    assert loaded.backbone.model.num_layers == 1
