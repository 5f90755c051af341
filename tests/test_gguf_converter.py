"""GGUF -> Hugging Face folder: dequantization, Q/K order, tokenizer, a forward pass."""

import json
import os
import stat

import numpy as np
import pytest
from helpers import tiny
from safetensors.numpy import load_file

from tftransfer import backbones
from tftransfer.backbones import gguf_converter


def _rms_norm(x, scale, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * scale


def _rope(x, theta=10000.0):
    # Hugging Face's Llama rotary embedding (rotate_half over the two halves).
    length, _, dim = x.shape
    inv = 1.0 / theta ** (np.arange(0, dim, 2) / dim)
    angles = np.arange(length)[:, None] * inv[None, :]
    cos = np.cos(np.concatenate([angles, angles], -1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], -1))[:, None, :]
    half = dim // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def numpy_llama(weights, ids, heads=4, kv_heads=2):
    """Reference Llama forward (one sequence) in float64 NumPy."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = w["model.embed_tokens.weight"][ids]
    length, hidden = x.shape
    dim = hidden // heads
    causal = np.triu(np.full((length, length), -np.inf), 1)
    layer = 0
    while f"model.layers.{layer}.input_layernorm.weight" in w:
        p = f"model.layers.{layer}."
        h = _rms_norm(x, w[p + "input_layernorm.weight"])
        q = _rope((h @ w[p + "self_attn.q_proj.weight"].T).reshape(length, heads, dim))
        k = _rope((h @ w[p + "self_attn.k_proj.weight"].T).reshape(length, kv_heads, dim))
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(length, kv_heads, dim)
        k, v = np.repeat(k, heads // kv_heads, 1), np.repeat(v, heads // kv_heads, 1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(dim) + causal
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(length, hidden)
        x = x + attended @ w[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((gate / (1 + np.exp(-gate))) * up) @ w[p + "mlp.down_proj.weight"].T
        layer += 1
    x = _rms_norm(x, w["model.norm.weight"])
    return x @ w["model.embed_tokens.weight"].T


@pytest.mark.parametrize(
    "embedding_type,matrix_type",
    [("Q8_0", "Q4_1"), ("Q8_0", "Q4_0"), ("F16", "Q8_0"), ("F32", "F16")],
)
def test_weights_match_a_numpy_dequantization(tmp_path, embedding_type, matrix_type):
    path = str(tmp_path / "tiny.gguf")
    reference = tiny.write_llama_gguf(path, embedding_type=embedding_type, matrix_type=matrix_type)
    out = gguf_converter.convert(path, str(tmp_path / "hf"))
    weights = load_file(os.path.join(out, "model.safetensors"))
    assert sorted(weights) == sorted(reference)
    # Readable as the folder's other files are (safetensors alone writes 0600).
    modes = {stat.S_IMODE(os.stat(os.path.join(out, f)).st_mode) for f in os.listdir(out)}
    assert len(modes) == 1
    for name, value in reference.items():
        np.testing.assert_allclose(weights[name], value, rtol=0, atol=1e-6, err_msg=name)
    # Quantization is lossy, but close to the weights that were quantized.
    original = tiny.llama_weights(len(tiny.bpe()[0]), **tiny.LLAMA)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert np.abs(weights[q] - original[q]).max() < 0.1


def test_forward_pass_matches_a_numpy_llama(tmp_path):
    folder = tiny.llama_folder(str(tmp_path / "hf"))
    reference = tiny.write_llama_gguf(str(tmp_path / "again.gguf"))
    backbone, tokenizer = backbones.load(folder)
    assert type(backbone).__name__ == "Llama3Backbone"
    lm = backbones.Backbone(backbone).causal_lm()
    ids = np.asarray(tokenizer("the movie was great and the story was fun"))
    logits = np.asarray(lm({"token_ids": ids[None], "padding_mask": np.ones_like(ids)[None]}))[0]
    expected = numpy_llama(reference, ids)
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()


def test_tokenizer_matches_hugging_face_tokenizers(tmp_path):
    import tokenizers

    folder = tiny.llama_folder(str(tmp_path / "hf"))
    _, tokenizer = backbones.load(folder, random_init=True)
    reference = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    for text in tiny.LM_TEXT + ["<|im_start|>user\nhi<|im_end|>\n"]:
        ours = np.asarray(tokenizer(text)).tolist()
        assert ours == reference.encode(text).ids, text
        assert tokenizer.detokenize(np.asarray(ours)) == text
    config = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    assert (config["bos_token"], config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.chat_template == tiny.CHAT_TEMPLATE


def test_unsupported_architecture_is_named(tmp_path):
    path = str(tmp_path / "falcon.gguf")
    tiny.write_llama_gguf(path, arch="falcon")
    with pytest.raises(gguf_converter.ConversionError, match="falcon.gguf: architecture `falcon`"):
        gguf_converter.convert(path, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


def test_truncated_file_is_named(tmp_path):
    path = str(tmp_path / "tiny.gguf")
    tiny.write_llama_gguf(path)
    with open(path, "rb") as f:
        head = f.read(os.path.getsize(path) // 2)
    cut = str(tmp_path / "cut.gguf")
    with open(cut, "wb") as f:
        f.write(head)
    with pytest.raises(gguf_converter.ConversionError, match="cut.gguf: not a readable GGUF"):
        gguf_converter.convert(cut, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
