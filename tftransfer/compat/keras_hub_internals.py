"""keras-hub's private model internals: layers by attribute, caches, layer and variable names.

Each was read from keras-hub 0.32; `compat.check()` probes each one's
presence and the behaviour tftransfer relies on, on tiny models.
"""

import re

import keras
import keras_hub

from tftransfer.compat.base import incompatible, require
from tftransfer.compat.keras_internals import flatten_layers

#: BertBackbone attributes the packed model calls one by one.
BERT_LAYERS = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_add",
    "embeddings_layer_norm",
    "embeddings_dropout",
    "transformer_layers",
    "pooled_dense",
)


# keras-hub 0.32: BertBackbone takes no attention mask or positions, so
# packed rows must call its layers one by one.
def bert_layers(backbone):
    """BertBackbone's own layers, by name (see `BERT_LAYERS`)."""
    return {name: require(backbone, name, "keras-hub") for name in BERT_LAYERS}


@keras.saving.register_keras_serializable(package="tftransfer")
def exact_gelu(x):
    """Exact (erf) GELU, computed in float32 for 16-bit inputs.

    TensorFlow's CPU kernel for erfc in bfloat16 runs several times slower
    than in float32 (BENCHMARKS.md, "Speed on a CPU with AVX512_BF16"): under
    `mixed_precision: bfloat16` it took more time than all the matmuls it
    made faster. The cast each way costs far less.
    """
    if keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16"):
        return keras.ops.cast(keras.activations.gelu(keras.ops.cast(x, "float32")), x.dtype)
    return keras.activations.gelu(x)


# keras-hub 0.32: `LeanBert` computes a BERT block (TransformerEncoder) from
# its sublayers, which keras-hub and keras keep in private attributes.
def bert_layer_parts(layer):
    """A keras-hub `TransformerEncoder`'s sublayers, for `LeanBert`.

    Returns a dict: `attention` (the MultiHeadAttention), `dense` (query,
    key, value, output: EinsumDense; intermediate, feedforward_output: Dense),
    the two layer norms and three dropout layers, `heads`, `key_dim`,
    `value_dim`, `scale` (1/sqrt(key_dim)), `attention_probs_dropout_rate` (on
    the attention probabilities: at 0 Keras takes `ops.dot_product_attention`,
    a float32 softmax) and `normalize_first`.
    """
    attention = require(layer, "_self_attention_layer", "keras-hub")
    dense = {
        "query": require(attention, "_query_dense", "keras"),
        "key": require(attention, "_key_dense", "keras"),
        "value": require(attention, "_value_dense", "keras"),
        "output": require(attention, "_output_dense", "keras"),
        "intermediate": require(layer, "_feedforward_intermediate_dense", "keras-hub"),
        "feedforward_output": require(layer, "_feedforward_output_dense", "keras-hub"),
    }
    return {
        "attention": attention,
        "dense": dense,
        "attention_norm": require(layer, "_self_attention_layer_norm", "keras-hub"),
        "feedforward_norm": require(layer, "_feedforward_layer_norm", "keras-hub"),
        "attention_probs_dropout": require(attention, "_dropout_layer", "keras"),
        "attention_dropout": require(layer, "_self_attention_dropout", "keras-hub"),
        "feedforward_dropout": require(layer, "_feedforward_dropout", "keras-hub"),
        "heads": require(attention, "_num_heads", "keras"),
        "key_dim": require(attention, "_key_dim", "keras"),
        "value_dim": require(attention, "_value_dim", "keras"),
        "scale": require(attention, "_inverse_sqrt_key_dim", "keras"),
        "attention_probs_dropout_rate": require(attention, "_dropout", "keras"),
        "normalize_first": require(layer, "normalize_first", "keras-hub"),
    }


# keras-hub 0.32: BERT's feed-forward hard-codes the tanh approximation (as
# Google's BERT did); HF checkpoints were trained with exact GELU and
# keras-hub has no switch.
def set_exact_gelu(backbone):
    """Makes keras-hub BERT's feed-forward layers use exact (erf) GELU."""
    for layer in require(backbone, "transformer_layers", "keras-hub"):
        dense = require(layer, "_feedforward_intermediate_dense", "keras-hub")
        dense.activation = exact_gelu


# keras-hub 0.32: `call_with_cache` is public, the builder of its cache is
# not. (A keras-hub that returned more than the two would be caught here.)
def build_decoder_cache(causal_lm, token_ids):
    """`(hidden states, cache)` of a keras-hub CausalLM after reading `token_ids`.

    The cache is `[batch, layers, 2, length, heads, head_dim]` for every
    keras-hub decoder (GPT-2, Llama, Mistral, Gemma, ...); its length is
    `token_ids`' length.
    """
    built = require(causal_lm, "_build_cache", "keras-hub")(token_ids)
    if not isinstance(built, (tuple, list)) or len(built) != 2:
        count = len(built) if isinstance(built, (tuple, list)) else "not a tuple"
        raise incompatible(
            "keras-hub",
            f"`{type(causal_lm).__name__}._build_cache`",
            f"returned {count} values, not (hidden states, cache)",
        )
    return tuple(built)


# keras-hub 0.32: Llama's and Mistral's `call_with_cache` slices and
# re-stacks the whole 6-D cache every token; calling their layers directly
# keeps one cache per layer (BENCHMARKS.md, "Decoding step in-process").
def llama_style_parts(causal_lm):
    """`(token_embedding, transformer_layers, final norm)` of a Llama/Mistral CausalLM.

    Their `call_with_cache` is embedding -> layers (each with its own
    `[batch, 2, length, heads, head_dim]` cache) -> norm -> tied or separate
    output projection. None for other families.
    """
    families = (keras_hub.models.LlamaCausalLM, keras_hub.models.MistralCausalLM)
    if not isinstance(causal_lm, families):
        return None
    backbone = causal_lm.backbone
    return tuple(
        require(backbone, name, "keras-hub")
        for name in ("token_embedding", "transformer_layers", "layer_norm")
    )


#: the keyword arguments a Llama/Mistral decoder layer takes its cache by (as used below).
DECODER_CACHE_KEYWORDS = ("self_attention_cache", "self_attention_cache_update_index")


# keras-hub 0.32: how `call_with_cache` calls each decoder layer, which is
# not a documented API of the layer.
def decoder_layer_with_cache(layer, x, cache, index):
    """`(x, cache)` of a Llama/Mistral decoder layer reading `x` at position `index`."""
    out = layer(x, self_attention_cache=cache, self_attention_cache_update_index=index)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise incompatible(
            "keras-hub",
            f"`{type(layer).__name__}.call` with a cache",
            "no longer returns (outputs, cache)",
        )
    return tuple(out)


# keras-hub 0.32: `LeanLlama` computes a Llama layer from its sublayers'
# weights, which keras-hub keeps in private attributes.
def llama_layer_parts(layer):
    """A keras-hub Llama decoder layer's sublayers, for `LeanLlama`.

    Returns a dict: `attention_norm`, `feedforward_norm` (LlamaLayerNorm,
    see `llama_norm_weights`), `dense` (query, key, value, output, gate, up,
    down: Einsum/Dense layers), `rotary` (the attention's rotary layer),
    `scale` (the attention's 1/sqrt(head_dim)) and `activation` (the gate's).
    """
    attention = require(layer, "_self_attention_layer", "keras-hub")
    dense = {
        "query": require(attention, "_query_dense", "keras-hub"),
        "key": require(attention, "_key_dense", "keras-hub"),
        "value": require(attention, "_value_dense", "keras-hub"),
        "output": require(attention, "_output_dense", "keras-hub"),
        "gate": require(layer, "_feedforward_gate_dense", "keras-hub"),
        "up": require(layer, "_feedforward_intermediate_dense", "keras-hub"),
        "down": require(layer, "_feedforward_output_dense", "keras-hub"),
    }
    return {
        "attention_norm": require(layer, "_self_attention_layernorm", "keras-hub"),
        "feedforward_norm": require(layer, "_feedforward_layernorm", "keras-hub"),
        "dense": dense,
        "rotary": require(attention, "rotary_embedding_layer", "keras-hub"),
        "scale": require(attention, "_inv_norm_factor", "keras-hub"),
        "activation": require(layer, "activation", "keras-hub"),
    }


# keras-hub 0.32: LlamaLayerNorm (not exported) keeps its weight and epsilon
# as plain attributes; `LeanLlama` normalizes with them.
def llama_norm_weights(norm):
    """`(scale, epsilon)` of a keras-hub LlamaLayerNorm: `x * rsqrt(mean(x^2) + eps) * scale`."""
    return require(norm, "scale", "keras-hub"), require(norm, "epsilon", "keras-hub")


# keras-hub 0.32 names the blocks of its encoders and decoders (BERT, GPT-2,
# Llama, Mistral, Gemma, ...) `transformer_layer_<i>` and their variables
# `transformer_layer_<i>/...`; the embeddings' variables have `embed` in their
# path. Layer-wise strategies (llrd, gradual_unfreezing) and LoRA find the
# blocks by these names.
_BLOCK_NAME = re.compile(r"transformer_layer_(\d+)")
_BLOCK_PATH = re.compile(r"(?:^|/)transformer_layer_(\d+)/")


def block_of_path(path):
    """The transformer block (0-based) a variable path lies in, or None."""
    found = _BLOCK_PATH.search(path)
    return int(found.group(1)) if found else None


def is_embedding_path(path):
    """Whether a backbone variable outside the blocks belongs to its embeddings."""
    return "embed" in path


def transformer_blocks(model):
    """`[(index, block layer)]` of a keras-hub backbone, in order."""
    found = [(_BLOCK_NAME.fullmatch(layer.name), layer) for layer in flatten_layers(model)]
    return sorted(((int(m.group(1)), layer) for m, layer in found if m), key=lambda b: b[0])


#: keras-hub's names of the projections in its transformer blocks: every
#: block has the attention and feed-forward ones, gated feed-forwards (Llama,
#: Mistral) also `feedforward_gate_dense`.
PROJECTIONS = (
    "query",
    "key",
    "value",
    "attention_output",
    "feedforward_intermediate_dense",
    "feedforward_gate_dense",
    "feedforward_output_dense",
)
GATE_PROJECTIONS = ("feedforward_gate_dense",)


def adaptable_layers(block):
    """`{name: layer}` of the layers in `block` that Keras' `enable_lora` adapts."""
    return {layer.name: layer for layer in flatten_layers(block) if hasattr(layer, "enable_lora")}
