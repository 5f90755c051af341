"""`check()`: every internal of this package probed on tiny objects, for presence and behaviour.

Each probe builds what it needs (a 2-block BERT, GPT-2, Llama and Mistral of
hidden size 4 to 8, a two-variable optimizer) and uses the internals as
tftransfer does: the keyword arguments it passes, the values it unpacks,
the methods it overrides being called, the variable paths it reads blocks
from, and the fast BERT block and Llama forward against keras-hub's own layers.
"""

import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.compat import keras_hub_internals as hub
from tftransfer.compat.base import CompatError, incompatible, require, require_keywords
from tftransfer.compat.keras_hub_tokenizers import check_tokenizers
from tftransfer.compat.keras_internals import (
    check_dropout_seed,
    check_merge_lora,
    check_optimizer,
)
from tftransfer.compat.tf_internals import check_merge_call


def check():
    """Runs every probe; raises one `CompatError` naming each internal that failed.

    A failure names the library, its installed version, the internal and
    what changed, so a version bump shows all its breakages together.
    """
    start = time.perf_counter()
    failures = []
    for library, probe in PROBES:
        try:
            probe()
        except CompatError as e:
            failures.append(str(e))
        except Exception as e:  # an internal that changed may fail in any way
            problem = f"raised {type(e).__name__}: {e}"
            failures.append(str(incompatible(library, f"probing with `{probe.__name__}`", problem)))
    if failures:
        raise CompatError("\n".join(failures))
    logging.info(
        "compat.check: %d probes passed in %.1f s", len(PROBES), time.perf_counter() - start
    )


def check_bert():
    """BERT's layers by attribute, exact GELU, its blocks' names, the fast block's numbers."""
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=5,
        num_layers=2,
        num_heads=2,
        hidden_dim=4,
        intermediate_dim=4,
        max_sequence_length=8,
    )
    layers = hub.bert_layers(backbone)
    hub.set_exact_gelu(backbone)
    names = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm")
    check_blocks(backbone, [layers[name] for name in names], ungated=True)
    check_lean_bert(backbone)


def check_lean_bert(backbone):
    """The fast BERT block (`backbones/lean_bert.py`) gives keras-hub's outputs, random weights."""
    from tftransfer.backbones.lean_bert import LeanBert  # backbones import compat

    rng = np.random.default_rng(0)
    for v in backbone.trainable_weights:
        v.assign(rng.normal(1.0 if "gamma" in v.path else 0.0, 0.3, v.shape).astype("float32"))
    layer = backbone.transformer_layers[0]
    x = tf.constant(rng.normal(size=(2, 5, backbone.hidden_dim)), tf.float32)
    mask = tf.constant(np.tril(np.ones((5, 5), bool))[None].repeat(2, 0))
    if not LeanBert.supports(backbone):
        raise incompatible("keras-hub", "`BertBackbone`", "has layers the fast BERT block lacks")
    want = np.asarray(layer(x, attention_mask=mask))
    error = float(np.max(np.abs(np.asarray(LeanBert.encoder_layer(layer, x, mask)) - want)))
    if not error <= 1e-5 * max(1.0, float(np.max(np.abs(want)))):
        problem = (
            "computes other outputs than the fast BERT block (`LeanBert`, max difference "
            f"{error:.2g}; `backbone.fast_forward: off` avoids it)"
        )
        raise incompatible("keras-hub", "`TransformerEncoder`", problem)


def check_gpt2():
    """GPT-2's cache builder (what it returns, the cache's layout) and its blocks' names."""
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=8,
        num_layers=2,
        num_heads=1,
        hidden_dim=4,
        intermediate_dim=4,
        max_sequence_length=8,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    _, cache = hub.build_decoder_cache(causal_lm, keras.ops.ones((1, 3), "int32"))
    if tuple(cache.shape) != (1, 2, 2, 3, 1, 4):
        problem = f"made a cache shaped {tuple(cache.shape)}, not (1, 2, 2, 3, 1, 4)"
        raise incompatible("keras-hub", "`GPT2CausalLM._build_cache`", problem)
    embeddings = [
        require(backbone, name, "keras-hub") for name in ("token_embedding", "position_embedding")
    ]
    check_blocks(backbone, embeddings, ungated=True)


def check_blocks(backbone, embeddings, ungated):
    """The block of each variable by its path, the embeddings by `embed`, LoRA's layer names.

    Args:
        backbone: a tiny keras-hub backbone with `transformer_layers`.
        embeddings: its embedding layers (depth 0 for layer-wise strategies).
        ungated: its feed-forward has no gate (`hub.GATE_PROJECTIONS`).
    """
    name = type(backbone).__name__
    blocks = require(backbone, "transformer_layers", "keras-hub")
    if hub.transformer_blocks(backbone) != list(enumerate(blocks)):
        raise incompatible("keras-hub", f"{name}'s blocks", "are not named `transformer_layer_<i>`")
    owner = {id(v): i for i, block in enumerate(blocks) for v in block.trainable_variables}
    embedded = {id(v) for layer in embeddings for v in layer.trainable_variables}
    for v in backbone.trainable_variables:
        block, found = owner.get(id(v)), hub.block_of_path(v.path)
        if found != block:
            problem = f"is in block {block} but its path says {found} (`transformer_layer_<i>/`)"
            raise incompatible("keras-hub", f"{name}'s variable `{v.path}`", problem)
        if block is None and hub.is_embedding_path(v.path) != (id(v) in embedded):
            what = "an embedding" if id(v) in embedded else "no embedding"
            problem = f"is {what} but its path says otherwise (`embed`)"
            raise incompatible("keras-hub", f"{name}'s variable `{v.path}`", problem)
    expected = [p for p in hub.PROJECTIONS if not (ungated and p in hub.GATE_PROJECTIONS)]
    for i, block in enumerate(blocks):
        missing = [p for p in expected if p not in hub.adaptable_layers(block)]
        if missing:
            problem = f"has no layer {', '.join(missing)} (LoRA's default targets)"
            raise incompatible("keras-hub", f"{name}'s block {block.name}", problem)


def tiny_llama(family="llama"):
    """A 2-block keras-hub Llama 3 (tied embeddings, grouped heads) or Mistral CausalLM."""
    sizes = dict(vocabulary_size=11, num_layers=2, num_query_heads=2, num_key_value_heads=1)
    sizes.update(hidden_dim=8, intermediate_dim=8)
    if family == "mistral":
        backbone = keras_hub.models.MistralBackbone(**sizes)
        return keras_hub.models.MistralCausalLM(backbone=backbone, preprocessor=None)
    backbone = keras_hub.models.Llama3Backbone(**sizes, tie_word_embeddings=True)
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)


def check_llama():
    """Llama: its parts, its decoder layers with a cache, its blocks, the fast forward's numbers."""
    causal_lm = tiny_llama()
    token_embedding = check_decoder_layers(causal_lm)
    check_blocks(causal_lm.backbone, [token_embedding], ungated=False)
    check_lean_llama(causal_lm)


def check_mistral():
    """Mistral: its decoder layers as `CachedDecoder` calls them one by one."""
    check_decoder_layers(tiny_llama("mistral"))


def check_decoder_layers(causal_lm):
    """A Llama/Mistral layer called with a cache as `CachedDecoder` calls it; the cache built.

    Returns the token embedding (of `compat.llama_style_parts`).
    """
    parts = hub.llama_style_parts(causal_lm)
    name = type(causal_lm).__name__
    if parts is None:
        raise incompatible(
            "keras-hub", f"`{name}`", "is no longer a LlamaCausalLM or MistralCausalLM"
        )
    token_embedding, layers, _ = parts
    layer = layers[0]
    owner = f"{type(layer).__name__}.call"
    require_keywords(type(layer).call, hub.DECODER_CACHE_KEYWORDS, "keras-hub", owner)
    backbone = causal_lm.backbone
    head_dim = backbone.hidden_dim // backbone.num_query_heads
    cache = tf.zeros([1, 2, 4, backbone.num_key_value_heads, head_dim])
    x = token_embedding(tf.constant([[1, 2, 3]]))
    out, updated = hub.decoder_layer_with_cache(layer, x, cache, 0)
    if tuple(updated.shape) != tuple(cache.shape):
        problem = f"returned a cache shaped {tuple(updated.shape)}, not {tuple(cache.shape)}"
        raise incompatible("keras-hub", f"`{owner}` with a cache", problem)
    if not np.allclose(out, layer(x), atol=1e-5):
        raise incompatible(
            "keras-hub", f"`{owner}` with a cache", "computes otherwise than without"
        )
    _, whole = hub.build_decoder_cache(causal_lm, tf.constant([[1, 2, 3]]))
    if tuple(whole.shape) != (1, len(layers), 2, 3, backbone.num_key_value_heads, head_dim):
        problem = f"made a cache shaped {tuple(whole.shape)}"
        raise incompatible("keras-hub", f"`{name}._build_cache`", problem)
    return token_embedding


def check_lean_llama(causal_lm):
    """The fast Llama forward (`models/lean_llama.py`) gives keras-hub's logits, random weights."""
    from tftransfer.models.lean_llama import LeanLlama  # models import compat: not at the top

    rotary = hub.llama_layer_parts(causal_lm.backbone.transformer_layers[0])["rotary"]
    require_keywords(
        type(rotary).call, ["start_index"], "keras-hub", f"{type(rotary).__name__}.call"
    )
    rng = np.random.default_rng(0)
    for v in causal_lm.trainable_weights:
        v.assign(rng.normal(1.0 if "scale" in v.path else 0.0, 0.3, v.shape).astype("float32"))
    ids = tf.constant([[3, 7, 1, 9, 4], [2, 5, 10, 6, 8]])
    mask = tf.ones_like(ids)
    reference = np.asarray(causal_lm({"token_ids": ids, "padding_mask": mask}))
    if not LeanLlama.supports(causal_lm):
        raise incompatible(
            "keras-hub", "`LlamaCausalLM`", "has layers the fast Llama forward lacks"
        )
    lean = LeanLlama(causal_lm)
    cache = lean.read_prompts(ids[:, :3], total=5)
    steps = []
    for i in (3, 4):
        logits, cache = lean.step(ids[:, i : i + 1], cache, i)
        steps.append(np.asarray(logits))
    for what, got, want in (
        ("training forward", lean.forward(ids, mask), reference),
        ("cached decoding", np.concatenate(steps, axis=1), reference[:, 3:]),
    ):
        error = float(np.max(np.abs(np.asarray(got) - want)))
        if not error <= 1e-5 * max(1.0, float(np.max(np.abs(want)))):
            problem = (
                f"compute other logits than the fast Llama forward's {what} (`LeanLlama`, "
                f"max difference {error:.2g}; `backbone.fast_forward: off` avoids it)"
            )
            raise incompatible("keras-hub", "Llama's layers", problem)


#: `(library, probe)`: what `check()` runs, in order.
PROBES = (
    ("keras", check_optimizer),
    ("keras", check_merge_lora),
    ("keras", check_dropout_seed),
    ("tensorflow", check_merge_call),
    ("keras-hub", check_tokenizers),
    ("keras-hub", check_bert),
    ("keras-hub", check_gpt2),
    ("keras-hub", check_llama),
    ("keras-hub", check_mistral),
)
