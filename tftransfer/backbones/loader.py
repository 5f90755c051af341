"""Loading a backbone spec as a keras-hub backbone and its tokenizer, and saving one.

`load` reads what the checkpoint's folder says about itself (tokenizer
normalisation, exact GELU, the chat template, settings keras-hub drops),
builds the keras-hub tokenizer and backbone, then makes them behave as the
checkpoint was trained. `save_preset` writes a keras-hub preset folder with
what keras-hub does not record beside it (`OPTIONS_FILE`), which `load`
applies again.
"""

import contextlib
import dataclasses
import inspect
import json
import os
import tempfile

import keras_hub
import tensorflow as tf

from tftransfer import compat, fileio
from tftransfer.backbones import hf_folder, specs
from tftransfer.backbones import keep_layers as kept
from tftransfer.backbones.backbone import Backbone
from tftransfer.text import hf_byte_pair_tokenizer
from tftransfer.text.hf_bert_tokenizer import HfBertTokenizer
from tftransfer.text.hf_byte_pair_tokenizer import HfBytePairTokenizer

#: what a keras-hub preset cannot hold, written beside it by `save_preset`.
OPTIONS_FILE = "tftransfer_backbone.json"


@contextlib.contextmanager
def _load_errors(spec, kind):
    """Turns keras-hub's loading errors into a `BackboneError` that says what to do."""
    hint = (
        " Named presets are downloaded from Kaggle/Hugging Face on first use; offline, "
        "pass a local preset folder, a Hugging Face-format folder, or `default`."
    )
    try:
        yield
    except (OSError, ValueError, ConnectionError) as e:
        raise specs.BackboneError(
            f"cannot load backbone `{spec}`: {e}.{hint if kind == 'hub' else ''}"
        ) from e
    except Exception as e:  # network stacks raise many unrelated types
        if kind != "hub":
            raise
        raise specs.BackboneError(
            f"cannot load keras-hub preset `{spec}` ({type(e).__name__}: {e}).{hint}"
        ) from e


def load(
    spec=specs.DEFAULT_SPEC,
    strip_accents=None,
    exact_gelu=None,
    dropout=None,
    random_init=False,
    keep_layers=None,
):
    """Loads a backbone and the tokenizer it was trained with.

    Args:
        spec: see the package docstring.
        strip_accents: None = as the checkpoint's tokenizer did.
        exact_gelu: None = as the checkpoint was trained.
        dropout: replace the backbone's dropout rate.
        random_init: same architecture, random weights.
        keep_layers: None keeps every transformer block; a count keeps the
            first ones, a list of indices those blocks (`keep_layers`).

    Returns:
        (backbone, tokenizer): a `keras_hub.models.Backbone` and its
        `keras_hub.tokenizers.Tokenizer`.

    Raises:
        BackboneError: the spec cannot be resolved or loaded, or
            `exact_gelu` is forced on a backbone that is not BERT's.
    """
    preset, kind = specs.resolve(spec)
    options = _folder_options(preset, kind, strip_accents, exact_gelu)
    backbone_kwargs = {"load_weights": not random_init, **options.backbone_kwargs}
    if dropout is not None:
        backbone_kwargs["dropout"] = dropout
    with _load_errors(spec, kind):
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset, **options.tokenizer_kwargs)
        backbone = keras_hub.models.Backbone.from_preset(preset, **backbone_kwargs)
    if keep_layers is not None:
        backbone = kept.keep_layers(backbone, keep_layers, _unsaved_backbone_kwargs(backbone))
    tokenizer = _as_trained_tokenizer(tokenizer, preset, kind, options)
    _set_exact_gelu(backbone, options.exact_gelu, forced=exact_gelu is not None)
    return backbone, tokenizer


@dataclasses.dataclass
class _FolderOptions:
    """How to load a checkpoint: the caller's choices, else what its folder records."""

    exact_gelu: object = None
    chat_template: object = None
    tokenizer_kwargs: dict = dataclasses.field(default_factory=dict)
    backbone_kwargs: dict = dataclasses.field(default_factory=dict)
    #: a local preset's byte-level BPE settings (`HfBytePairTokenizer.settings`).
    byte_level: object = None


def _folder_options(preset, kind, strip_accents, exact_gelu):
    """Reads a resolved spec's folder: a Hugging Face folder or a preset `save_preset` wrote.

    A named preset (`kind == "hub"`) records nothing beyond keras-hub's own
    config; the caller's choices are kept as they are.
    """
    options = _FolderOptions(exact_gelu=exact_gelu)
    if kind == "hf":
        config = hf_folder.read_json(preset)
        if strip_accents is None and config.get("model_type") in hf_folder.WORDPIECE_TYPES:
            strip_accents = hf_folder.strip_accents(preset)
        if exact_gelu is None:
            options.exact_gelu = hf_folder.exact_gelu(preset)
        options.backbone_kwargs.update(hf_folder.backbone_kwargs(config))
        tokenizer_config = hf_folder.read_json(preset, "tokenizer_config.json")
        options.chat_template = tokenizer_config.get("chat_template")
    elif kind == "local":
        saved = hf_folder.read_json(preset, OPTIONS_FILE)  # {} if absent
        if exact_gelu is None:
            options.exact_gelu = saved.get("exact_gelu")
        options.chat_template = saved.get("chat_template")
        options.backbone_kwargs.update(saved.get("backbone_kwargs", {}))
        options.tokenizer_kwargs = dict(saved.get("tokenizer_kwargs", {}))
        options.byte_level = saved.get("byte_level")
    tokenizer_kwargs = options.tokenizer_kwargs
    if "misc_special_tokens" in tokenizer_kwargs:
        # JSON has no sets; keras-hub's tokenizers take one.
        tokenizer_kwargs["misc_special_tokens"] = set(tokenizer_kwargs["misc_special_tokens"])
    if strip_accents is not None:
        tokenizer_kwargs["strip_accents"] = strip_accents
    return options


def _as_trained_tokenizer(tokenizer, preset, kind, options):
    """keras-hub's tokenizer, made to split text as the checkpoint's own did."""
    if type(tokenizer) is keras_hub.models.BertTokenizer:
        # keras-hub case-folds with NFKC and splits at control characters;
        # BERT checkpoints were trained on str.lower and deleted controls.
        tokenizer = HfBertTokenizer.like(tokenizer)
    # keras-hub's byte-level BPE pre-splits text otherwise than checkpoints.
    tokenizer = hf_byte_pair_tokenizer.exact(
        tokenizer,
        hf_folder.read_json(preset, "tokenizer.json") if kind == "hf" else None,
        options.byte_level,
    )
    # keras-hub tokenizers have no chat template; tasks that render chats
    # (causal LM) read it from here.
    chat_template = options.chat_template
    tokenizer.chat_template = chat_template if isinstance(chat_template, str) else None
    return tokenizer


def _set_exact_gelu(backbone, exact_gelu, forced):
    """Switches a BERT backbone to exact GELU; refuses a forced switch elsewhere."""
    # Not in keras-hub's config: `save_preset` records it beside the preset.
    backbone.tftransfer_exact_gelu = bool(
        exact_gelu and isinstance(backbone, keras_hub.models.BertBackbone)
    )
    if exact_gelu and isinstance(backbone, keras_hub.models.BertBackbone):
        compat.set_exact_gelu(backbone)
    elif exact_gelu and forced:
        raise specs.BackboneError(
            f"backbone.exact_gelu: only BERT backbones have the switch, not "
            f"{type(backbone).__name__}; set it to null"
        )


def _unsaved_backbone_kwargs(model):
    # Constructor arguments a keras-hub backbone leaves out of its config
    # (keras-hub 0.32's LlamaBackbone drops `tie_word_embeddings`, so a tied
    # checkpoint would reload expecting a separate output matrix).
    config = model.get_config()
    out = {}
    for name in inspect.signature(type(model).__init__).parameters:
        if name in ("self", "kwargs", "dtype") or name in config:
            continue
        value = getattr(model, name, None)
        if isinstance(value, (bool, int, float, str)):
            out[name] = value
    return out


def save_preset(backbone, tokenizer, path):
    """Writes a (trained) backbone and its tokenizer as a keras-hub preset folder.

    What keras-hub's preset does not record is kept in `OPTIONS_FILE` (exact
    GELU, the chat template) and applied again by `load`, so
    `backbone.spec: <path>` rebuilds the same function. Written to a
    temporary folder and renamed, so a crash leaves no half preset.

    Args:
        backbone: a `Backbone` (or keras-hub backbone).
        tokenizer: its keras-hub tokenizer.
        path: the preset folder (must not exist).
    """
    if "://" in path:
        # keras-hub writes presets with `open`: save locally, then copy.
        with tempfile.TemporaryDirectory() as local:
            save_preset(backbone, tokenizer, os.path.join(local, "preset"))
            with fileio.atomic_folder(path) as tmp:
                fileio.copy_files(os.path.join(local, "preset"), tmp)
        return path
    model = Backbone.wrap(backbone).model
    with fileio.atomic_folder(path) as tmp:
        model.save_to_preset(tmp)
        plain = tokenizer
        if isinstance(tokenizer, (HfBertTokenizer, HfBytePairTokenizer)):
            plain = tokenizer.as_keras_hub()  # loadable by keras-hub alone
        plain.save_to_preset(tmp)
        options = {
            "exact_gelu": bool(getattr(model, "tftransfer_exact_gelu", False)),
            "chat_template": getattr(tokenizer, "chat_template", None),
            "tokenizer_kwargs": hf_byte_pair_tokenizer.unsaved_kwargs(tokenizer),
            "backbone_kwargs": _unsaved_backbone_kwargs(model),
        }
        if isinstance(tokenizer, HfBytePairTokenizer):
            options["byte_level"] = tokenizer.settings()
        with tf.io.gfile.GFile(os.path.join(tmp, OPTIONS_FILE), "w") as f:
            json.dump(options, f, indent=2)
    return path


def from_config(backbone_config):
    """Loads the backbone described by a `configs.BackboneConfig`.

    Returns:
        (backbone, tokenizer): a `Backbone` and its keras-hub tokenizer.
    """
    backbone, tokenizer = load(
        backbone_config.spec,
        strip_accents=backbone_config.strip_accents,
        exact_gelu=backbone_config.exact_gelu,
        dropout=backbone_config.dropout,
        random_init=backbone_config.random_init,
        keep_layers=backbone_config.keep_layers,
    )
    backbone.trainable = backbone_config.trainable
    # Read by `LeanLlama.supports` and `LeanBert.supports`, where the fast
    # forward passes are chosen; kept on the Keras model, which every task's
    # model is built on.
    backbone._tftransfer_fast_forward = backbone_config.fast_forward != "off"
    return Backbone.wrap(backbone), tokenizer
