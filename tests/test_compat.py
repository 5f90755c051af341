"""`compat.check()` fails, naming library, version and internal, when an internal changes.

Each test changes one keras, keras-hub or TensorFlow internal the way an
upgrade could (a renamed keyword, one more return value, another norm, a
hook no longer called, renamed blocks) and expects the check to say so.
"""

import keras
import keras_hub
import pytest
import tensorflow as tf
from keras.src.optimizers import base_optimizer
from keras_hub.src.models.bert import bert_backbone
from keras_hub.src.models.llama import llama_decoder, llama_layernorm

from tftransfer import compat
from tftransfer.models.cached_decoder import CachedDecoder

WHAT_TO_DO = r"install the version setup\.cfg pins"


def test_every_private_internal_we_use_is_there_and_behaves():
    compat.check()


def test_a_missing_internal_fails_loudly_with_its_name():
    class Bare:
        transformer_layers = [object()]

    with pytest.raises(
        compat.CompatError, match=r"keras-hub .*`object._feedforward_intermediate_dense` is missing"
    ):
        compat.set_exact_gelu(Bare())
    with pytest.raises(
        compat.CompatError, match=r"`Bare.token_embedding` is missing.*" + WHAT_TO_DO
    ):
        compat.bert_layers(Bare())


def _three_values(monkeypatch):
    original = keras_hub.models.GPT2CausalLM._build_cache

    def build_cache(self, token_ids):
        return (*original(self, token_ids), None)  # e.g. a newer keras-hub's cache mask

    monkeypatch.setattr(keras_hub.models.GPT2CausalLM, "_build_cache", build_cache)


def test_a_cache_builder_returning_three_values_fails_the_check_and_decoding(monkeypatch):
    _three_values(monkeypatch)
    version = compat.versions()["keras-hub"]
    message = rf"keras-hub {version}: `GPT2CausalLM._build_cache` returned 3 values.*" + WHAT_TO_DO
    with pytest.raises(compat.CompatError, match=message):
        compat.check()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=10,
        num_layers=1,
        num_heads=1,
        hidden_dim=8,
        intermediate_dim=8,
        max_sequence_length=16,
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    decoder = CachedDecoder(lm, stop_ids=[9], pad_id=0, max_length=16)
    with pytest.raises(compat.CompatError, match=message):  # not "too many values to unpack"
        decoder(tf.ragged.constant([[1, 2]]), max_new_tokens=2)


def test_a_decoder_layer_that_takes_its_cache_by_other_names_fails(monkeypatch):
    decoder_class = llama_decoder.LlamaTransformerDecoder
    original = decoder_class.call

    def call(
        self,
        decoder_sequence,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        return original(
            self,
            decoder_sequence,
            decoder_padding_mask,
            decoder_attention_mask,
            cache,
            cache_update_index,
            training,
        )

    monkeypatch.setattr(decoder_class, "call", call)
    with pytest.raises(
        compat.CompatError,
        match=r"keras-hub .*`LlamaTransformerDecoder.call` takes no `self_attention_cache`, "
        r"`self_attention_cache_update_index`",
    ):
        compat.check()


def test_a_llama_norm_computing_otherwise_fails_the_fast_forward_comparison(monkeypatch):
    def gemma_style(self, x):  # scales by 1 + scale, as Gemma's norm does
        x = keras.ops.cast(x, "float32")
        x = x * keras.ops.rsqrt(keras.ops.mean(x * x, axis=-1, keepdims=True) + self.epsilon)
        return keras.ops.cast(x * (1 + self.scale), self.compute_dtype)

    monkeypatch.setattr(llama_layernorm.LlamaLayerNorm, "call", gemma_style)
    with pytest.raises(
        compat.CompatError,
        match=r"keras-hub .*: Llama's layers compute other logits than the fast Llama forward",
    ):
        compat.check()


def test_an_optimizer_that_no_longer_calls_the_weight_decay_hook_fails(monkeypatch):
    def apply_gradients(self, grads, trainable_variables):  # decays under another name
        self._backend_update_step(grads, trainable_variables, self.learning_rate)

    monkeypatch.setattr(base_optimizer.BaseOptimizer, "_backend_apply_gradients", apply_gradients)
    with pytest.raises(
        compat.CompatError, match=r"keras .*`AdamW._apply_weight_decay` is not called by `apply`"
    ):
        compat.check()


def test_renamed_blocks_fail_the_variable_path_check(monkeypatch):
    class Renamed(bert_backbone.TransformerEncoder):
        def __init__(self, *args, name=None, **kwargs):
            super().__init__(
                *args, name=name.replace("transformer_layer", "encoder_block"), **kwargs
            )

    monkeypatch.setattr(bert_backbone, "TransformerEncoder", Renamed)
    with pytest.raises(
        compat.CompatError,
        match=r"keras-hub .*: BertBackbone's blocks are not named `transformer_layer_<i>`",
    ):
        compat.check()


def test_every_breakage_of_an_upgrade_is_named_at_once(monkeypatch):
    _three_values(monkeypatch)
    monkeypatch.setattr(
        keras.optimizers.AdamW, "_use_weight_decay", lambda self, variable: True, raising=False
    )
    with pytest.raises(compat.CompatError) as raised:
        compat.check()
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert "`AdamW._use_weight_decay` no longer means what it did" in lines[0]
    assert "`GPT2CausalLM._build_cache` returned 3 values" in lines[1]
