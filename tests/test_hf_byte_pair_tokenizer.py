"""Decoder tokenizers give the token ids of the checkpoint's own `tokenizer.json`."""

import json
import os

import keras_hub
import pytest
import tensorflow as tf
from helpers import tiny
from helpers.probes import PROBES

from tftransfer import backbones
from tftransfer.backbones import gguf_converter
from tftransfer.text.hf_byte_pair_tokenizer import HfBytePairTokenizer, HfLlama3Tokenizer

tokenizers = pytest.importorskip("tokenizers")


def _assert_reference_ids(tokenizer, reference):
    """Eager and traced calls both give the reference's ids on every probe."""
    assert len(PROBES) >= 100
    want = [reference.encode(p, add_special_tokens=False).ids for p in PROBES]
    eager = tokenizer(PROBES).to_list()
    traced = tf.function(tokenizer, autograph=False)(tf.constant(PROBES)).to_list()
    for probe, ids, got_eager, got_traced in zip(PROBES, want, eager, traced):
        assert got_eager == ids, repr(probe)
        assert got_traced == ids, repr(probe)


@pytest.mark.parametrize("pre", ["default", "smollm", "llama-bpe"])
def test_a_converted_decoder_tokenizes_as_its_tokenizer_json(pre, tmp_path):
    # GGUF pre-tokenizers: GPT-2's regex, SmolLM2's (digits first), Llama 3's.
    folder = tiny.llama_folder(str(tmp_path / pre), pre=pre)
    _, tokenizer = backbones.load(folder)
    assert isinstance(tokenizer, HfLlama3Tokenizer)
    _assert_reference_ids(
        tokenizer, tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    )


def test_a_gpt2_tokenizer_tokenizes_as_hugging_face_gpt2():
    vocab, merges = tiny.bpe()
    plain = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    ours = HfBytePairTokenizer.like(plain, "gpt2", added_tokens=tiny.LM_SPECIALS)
    reference = tokenizers.Tokenizer(
        tokenizers.models.BPE(vocab, [tuple(m.split(" ")) for m in merges])
    )
    reference.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    reference.add_special_tokens(tiny.LM_SPECIALS)
    _assert_reference_ids(ours, reference)


def test_special_token_text_is_the_special_token_and_decodes_back(tmp_path):
    _, tokenizer = backbones.load(tiny.llama_folder(str(tmp_path / "smollm"), pre="smollm"))
    end = tokenizer.token_to_id("<|im_end|>")
    ids = tokenizer("hi<|im_end|>").numpy().tolist()
    assert ids[-1] == end and end not in ids[:-1]
    assert tokenizer.detokenize(ids) == "hi<|im_end|>"


def test_a_saved_preset_keeps_the_split(tmp_path):
    folder = tiny.llama_folder(str(tmp_path / "smollm"), pre="smollm")
    backbone, tokenizer = backbones.load(folder)
    preset = backbones.save_preset(backbone, tokenizer, str(tmp_path / "preset"))
    _, reloaded = backbones.load(preset)
    assert reloaded.settings() == tokenizer.settings()
    assert reloaded.settings()["split_digits"] is True
    assert reloaded(PROBES).to_list() == tokenizer(PROBES).to_list()
    # The preset names keras-hub's own class (no tftransfer class in it).
    with open(os.path.join(preset, "tokenizer.json")) as f:
        assert json.load(f)["registered_name"] == "keras_hub>Llama3Tokenizer"


def test_a_gguf_with_an_unknown_pre_tokenizer_is_refused(tmp_path):
    path = str(tmp_path / "qwen.gguf")
    tiny.write_llama_gguf(path, pre="qwen2")
    with pytest.raises(gguf_converter.ConversionError, match="pre-tokenizer `qwen2`"):
        gguf_converter.convert(path, str(tmp_path / "hf"))


@pytest.mark.slow
def test_smollm2_tokenizes_as_its_tokenizer_json():
    folder = backbones.decoder_path()
    _, tokenizer = backbones.load(folder)
    _assert_reference_ids(
        tokenizer, tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    )
