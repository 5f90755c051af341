"""Convert a llama.cpp GGUF checkpoint into a Hugging Face-format folder.

keras-hub loads Hugging Face-format folders (`config.json`,
`model.safetensors`, `tokenizer.json`) of the Llama family through its own
converter, so a GGUF file becomes a backbone in two steps: this module
writes the folder, `backbones.load` reads it. No torch is involved.

What the conversion does:
- reads the file with the `gguf` package and dequantizes every tensor to
  float32 with `gguf.quants.dequantize` (`gguf_reader`: F32, F16, BF16,
  Q8_0, Q4_0, Q4_1, the K-quants, ...). A quantized checkpoint stays lossy: Q4_1 -> fp32
  reproduces the quantized weights exactly, not the original fp16 ones;
- undoes llama.cpp's row permutation of the query and key projections
  (its converter interleaves rotary halves for its own rope kernel);
- writes the byte-level BPE tokenizer (vocabulary, merges, special tokens,
  chat template) as `tokenizer.json` + `tokenizer_config.json`.

Example:

>>> import tempfile
>>> from tftransfer.backbones import gguf_converter
>>> gguf_converter.convert("missing.gguf", tempfile.mkdtemp())
Traceback (most recent call last):
...
tftransfer.backbones.gguf_reader.ConversionError: missing.gguf: no such file
"""

import json
import os
import shutil
import stat

import numpy as np
from safetensors.numpy import save_file

from tftransfer.backbones import gguf_reader
from tftransfer.backbones.gguf_reader import ConversionError
from tftransfer.text import pre_tokenizers

#: llama.cpp architectures whose tensors map onto Hugging Face's LlamaForCausalLM.
LLAMA_LIKE = ("llama", "mistral")

#: GGUF token types (llama.cpp's `llama_token_type`) that are special tokens.
_CONTROL, _USER_DEFINED = 3, 4

_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
_GPT2 = dict(_BYTE_LEVEL, use_regex=True)
#: `tokenizer.json` pre-tokenizers by GGUF pre-tokenizer name (llama.cpp's
#: `tokenizer.ggml.pre`, llama-vocab.cpp): GPT-2's byte-level regex; SmolLM2's
#: digits one by one, then GPT-2's; Llama 3's own split pattern. Other names
#: split otherwise and are refused rather than converted to a tokenizer that
#: gives other ids than the checkpoint's.
_PRE_TOKENIZERS = {
    "default": _GPT2,
    "gpt-2": _GPT2,
    "gpt2": _GPT2,
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, _GPT2],
    },
    "llama-bpe": {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": pre_tokenizers.LLAMA3_REFERENCE},
                "behavior": "Isolated",
                "invert": False,
            },
            dict(_BYTE_LEVEL, use_regex=False),
        ],
    },
}
_PRE_TOKENIZERS["llama3"] = _PRE_TOKENIZERS["llama-bpe"]


def unpermute(weights, heads):
    """Undoes llama.cpp's query/key row permutation (`convert_hf_to_gguf.permute`)."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, rows // heads // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _config(reader, arch):
    def get(name, default=None):
        return gguf_reader.field(reader, f"{arch}.{name}", default)

    heads = int(get("attention.head_count"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": int(get("embedding_length")),
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "rms_norm_eps": float(np.float32(get("attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length")),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    scaling = gguf_reader.field(reader, f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", ""):
        raise ConversionError(f"{reader.path}: rope scaling `{scaling}` is not supported")
    return config


def _weights(reader, config):
    path = reader.path
    by_name = {t.name: t for t in reader.tensors}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]

    def take(name):
        if name not in by_name:
            raise ConversionError(f"{path}: tensor `{name}` is missing")
        return gguf_reader.dequantize(path, by_name.pop(name))

    weights = {
        "model.embed_tokens.weight": take("token_embd.weight"),
        "model.norm.weight": take("output_norm.weight"),
    }
    tied = "output.weight" not in by_name
    if not tied:
        weights["lm_head.weight"] = take("output.weight")
    by_name.pop("rope_freqs.weight", None)  # recomputed from rope_theta
    parts = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(config["num_hidden_layers"]):
        hf = f"model.layers.{i}"
        weights[f"{hf}.self_attn.q_proj.weight"] = unpermute(take(f"blk.{i}.attn_q.weight"), heads)
        weights[f"{hf}.self_attn.k_proj.weight"] = unpermute(
            take(f"blk.{i}.attn_k.weight"), kv_heads
        )
        for gguf_name, hf_name in parts.items():
            weights[f"{hf}.{hf_name}.weight"] = take(f"blk.{i}.{gguf_name}.weight")
    if by_name:
        raise ConversionError(f"{path}: unexpected tensors {sorted(by_name)[:5]}")
    config["vocab_size"] = int(weights["model.embed_tokens.weight"].shape[0])
    config["tie_word_embeddings"] = tied
    return weights


def _tokenizer(reader):
    """The file's byte-level BPE tokenizer as Hugging Face files.

    Returns:
        (tokenizer_json, tokenizer_config, specials): the contents of
        `tokenizer.json` and `tokenizer_config.json`, and the special tokens'
        ids by name (`bos`, `eos`, `unknown`, `padding`; -1 if absent).
    """
    path = reader.path
    model = gguf_reader.field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ConversionError(
            f"{path}: tokenizer `{model}` is not supported (only byte-level BPE, `gpt2`)"
        )
    tokens = list(gguf_reader.field(reader, "tokenizer.ggml.tokens"))
    types = list(gguf_reader.field(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = list(gguf_reader.field(reader, "tokenizer.ggml.merges"))
    specials = {
        name: int(gguf_reader.field(reader, f"tokenizer.ggml.{name}_token_id", -1))
        for name in ("bos", "eos", "unknown", "padding")
    }
    pre = gguf_reader.field(reader, "tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise ConversionError(
            f"{path}: pre-tokenizer `{pre}` (tokenizer.ggml.pre) is not supported; "
            f"supported: {', '.join(sorted(_PRE_TOKENIZERS))}"
        )
    added = [
        {
            "id": i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": kind == _CONTROL,
        }
        for i, (token, kind) in enumerate(zip(tokens, types))
        if kind in (_CONTROL, _USER_DEFINED)
    ]
    tokenizer_json = _tokenizer_json(tokens, merges, added, _PRE_TOKENIZERS[pre])
    tokenizer_config = _tokenizer_config(reader, tokens, specials, added)
    return tokenizer_json, tokenizer_config, specials


def _tokenizer_json(tokens, merges, added, pre_tokenizer):
    """`tokenizer.json`: GPT-2's byte-level BPE with the file's vocabulary and merges."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _GPT2,
        "decoder": _GPT2,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": merges,
        },
    }


def _tokenizer_config(reader, tokens, specials, added):
    """`tokenizer_config.json`: the special tokens, BOS, length and chat template."""

    def name(key):
        i = specials[key]
        return tokens[i] if 0 <= i < len(tokens) else None

    arch = gguf_reader.architecture(reader)
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": name("bos"),
        "eos_token": name("eos"),
        "unk_token": name("unknown"),
        "pad_token": name("padding"),
        "add_bos_token": bool(gguf_reader.field(reader, "tokenizer.ggml.add_bos_token", False)),
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(gguf_reader.field(reader, f"{arch}.context_length")),
        "added_tokens_decoder": {str(t["id"]): {k: t[k] for k in t if k != "id"} for t in added},
    }
    template = gguf_reader.field(reader, "tokenizer.chat_template", "")
    if template:
        tokenizer_config["chat_template"] = template
    return tokenizer_config


def convert(gguf_path, output_dir):
    """Writes `gguf_path` as a Hugging Face-format Llama folder.

    The folder is written next to `output_dir` and renamed into place, so an
    interrupted conversion never leaves a folder that looks complete.

    Args:
        gguf_path: a `.gguf` file of a Llama-architecture model with a
            byte-level BPE tokenizer.
        output_dir: the folder to create (must not exist).

    Returns:
        `output_dir`.

    Raises:
        ConversionError: unsupported architecture, tokenizer or tensor type,
            or a truncated file; the message names the file.
    """
    if os.path.isfile(output_dir) or (os.path.isdir(output_dir) and os.listdir(output_dir)):
        # Checked first: the conversion takes minutes for a real checkpoint.
        raise ConversionError(f"{output_dir} already exists; give a new folder or remove it")
    reader = gguf_reader.read(gguf_path)
    arch = gguf_reader.architecture(reader)
    if arch not in LLAMA_LIKE:
        raise ConversionError(
            f"{gguf_path}: architecture `{arch}` is not supported (supported: "
            f"{', '.join(LLAMA_LIKE)})"
        )
    config = _config(reader, arch)
    tokenizer_json, tokenizer_config, specials = _tokenizer(reader)
    weights = _weights(reader, config)
    for key, hf_key in (
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("padding", "pad_token_id"),
    ):
        if specials[key] >= 0:
            config[hf_key] = specials[key]
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(output_dir)}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _write_folder(tmp, reader, config, weights, tokenizer_json, tokenizer_config)
        os.rename(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def _write_folder(folder, reader, config, weights, tokenizer_json, tokenizer_config):
    """Writes the weights, config, tokenizer and where they came from into `folder`."""
    save_file(weights, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    files = {
        "config.json": config,
        "tokenizer.json": tokenizer_json,
        "tokenizer_config.json": tokenizer_config,
        "generation_config.json": {
            k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config
        },
        "tftransfer_conversion.json": {
            "source": os.path.abspath(reader.path),
            "source_bytes": os.path.getsize(reader.path),
            "name": str(gguf_reader.field(reader, "general.name", "")),
            "file_type": int(gguf_reader.field(reader, "general.file_type", -1)),
        },
    }
    for name, content in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=1)
    # safetensors writes its file owner-only (0600); the others have the
    # mode the user's umask gives new files.
    mode = stat.S_IMODE(os.stat(os.path.join(folder, "config.json")).st_mode)
    os.chmod(os.path.join(folder, "model.safetensors"), mode)
