"""What a Hugging Face-format folder records that keras-hub's converters drop.

keras-hub loads `config.json` + `model.safetensors` + the tokenizer files
itself; these functions read the settings it leaves out, so a checkpoint
behaves as it was trained: whether its tokenizer strips accents, whether it
uses exact GELU, and constructor arguments its converter does not pass on.

Example:

>>> from tftransfer.backbones import hf_folder, specs
>>> folder = specs.default_path()
>>> hf_folder.read_json(folder)["model_type"]
'bert'
>>> hf_folder.strip_accents(folder), hf_folder.exact_gelu(folder)
(True, True)
"""

import os

import tensorflow as tf

from tftransfer import fileio

#: Hugging Face model types whose keras-hub tokenizer is BERT's WordPiece.
WORDPIECE_TYPES = ("bert", "distilbert", "electra")


def read_json(path, name="config.json"):
    """The JSON file `name` in the folder `path`; `{}` if there is none.

    Args:
        path: a folder (local or gs://).
        name: the file's name in it.

    Returns:
        The file's content.
    """
    file = os.path.join(path, name)
    if not tf.io.gfile.exists(file):
        return {}
    return fileio.read_json(file)


def strip_accents(path):
    """Whether a Hugging Face checkpoint's tokenizer stripped accents.

    Read from `tokenizer.json`'s BertNormalizer, overridden by
    `tokenizer_config.json`.

    Args:
        path: a Hugging Face-format folder.

    Returns:
        A bool.
    """
    lowercase, strip = None, None
    normalizer = read_json(path, "tokenizer.json").get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        lowercase = normalizer.get("lowercase")
        strip = normalizer.get("strip_accents")
    cfg = read_json(path, "tokenizer_config.json")
    if cfg:
        lowercase = cfg.get("do_lower_case", lowercase)
        strip = cfg.get("strip_accents", strip)
    # HF's BertTokenizer strips accents whenever it lower-cases unless told
    # otherwise (`strip_accents: null`); keras-hub's default does not, which
    # turns every accented word into [UNK] for uncased vocabularies.
    if strip is None:
        strip = bool(lowercase)
    return strip


def exact_gelu(path):
    """Whether a Hugging Face checkpoint was trained with exact (erf) GELU.

    Args:
        path: a Hugging Face-format folder.

    Returns:
        True for `hidden_act: gelu` (keras-hub's BERT uses the tanh
        approximation, HF's `gelu_new`).
    """
    return read_json(path).get("hidden_act") == "gelu"


def backbone_kwargs(config):
    """Settings keras-hub's Hugging Face converters drop, passed back explicitly.

    Args:
        config: the folder's `config.json` content.

    Returns:
        Keyword arguments for `keras_hub.models.Backbone.from_preset`.
    """
    kwargs = {}
    # keras-hub 0.32's Llama converter does not read `rms_norm_eps` and keeps
    # its default 1e-6; SmolLM2 and Llama 2/3 use 1e-5 (logits then differ
    # by ~1e-3 instead of ~1e-6 from the reference implementation).
    if config.get("model_type") == "llama" and "rms_norm_eps" in config:
        kwargs["layer_norm_epsilon"] = float(config["rms_norm_eps"])
    return kwargs
