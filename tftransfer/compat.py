"""Every use of a library's private internals, checked, in one place.

tftransfer needs a few things that keras, keras-hub and TensorFlow have but do
not publish: BERT's embedding and transformer layers one by one (sequence
packing), the feed-forward activation of keras-hub's BERT layers (exact
GELU), Keras' Adam slots (the fused update), Keras' cross-replica gradient
sum (which the trainer does itself), and the word-splitting patterns of
keras-hub's WordPiece tokenizer, the merges of its byte-level BPE tokenizer,
and the key/value cache of keras-hub's causal LMs (cached decoding with
signature inputs). Each is reached through a function here, so
an upgrade that moves one fails at once with the name of what is missing
instead of training a wrong model. `check()` runs every probe; the tests call
it, so a version bump shows all breakages together.

Example:

>>> from tftransfer import compat
>>> compat.check()  # raises CompatError naming each missing attribute
>>> compat.versions()["keras-hub"]
'0.32.0'
"""

import importlib.metadata

import keras
import keras_hub

#: the versions this module's internals were read from (setup.cfg pins them).
TESTED = {
    "keras": "3.15",
    "keras-hub": "0.32",
    "tensorflow": "2.20",
    "tf-models-official": "2.20",
}

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


class CompatError(RuntimeError):
    """An installed library lacks an internal that tftransfer relies on."""


def versions():
    """Installed versions of the libraries in `TESTED` (None if absent)."""
    out = {}
    for name in TESTED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _require(obj, name, library):
    if not hasattr(obj, name):
        owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        installed = versions().get(library)
        raise CompatError(
            f"{library} {installed}: `{owner}.{name}` is missing; tftransfer "
            f"relies on it and was tested with {library} {TESTED[library]}.x"
        )
    return getattr(obj, name)


def bert_layers(backbone):
    """BertBackbone's own layers, by name (see `BERT_LAYERS`).

    keras-hub's BertBackbone takes no attention mask or positions, so packed
    rows must call its layers one by one.
    """
    return {name: _require(backbone, name, "keras-hub") for name in BERT_LAYERS}


@keras.saving.register_keras_serializable(package="tftransfer")
def exact_gelu(x):
    """Exact (erf) GELU, computed in float32 for 16-bit inputs.

    TensorFlow's CPU kernel for erfc in bfloat16 runs 5x slower than in
    float32 (BENCHMARKS.md, bfloat16 on a CPU with AVX512_BF16): under
    `mixed_precision: bfloat16` it took more time than all the matmuls it
    made faster. The cast each way costs far less.
    """
    if keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16"):
        return keras.ops.cast(keras.activations.gelu(keras.ops.cast(x, "float32")), x.dtype)
    return keras.activations.gelu(x)


def set_exact_gelu(backbone):
    """Makes keras-hub BERT's feed-forward layers use exact (erf) GELU.

    keras-hub hard-codes the tanh approximation (as Google's BERT did); HF
    checkpoints were trained with exact GELU and keras-hub has no switch.
    """
    for layer in _require(backbone, "transformer_layers", "keras-hub"):
        dense = _require(layer, "_feedforward_intermediate_dense", "keras-hub")
        dense.activation = exact_gelu


def adam_slots(optimizer, variable):
    """`(momentum, velocity)` of `variable` in a Keras Adam(W) optimizer."""
    index = _require(optimizer, "_get_variable_index", "keras")(variable)
    momentums = _require(optimizer, "_momentums", "keras")
    velocities = _require(optimizer, "_velocities", "keras")
    return momentums[index], velocities[index]


#: the Keras optimizer method that sums gradients across replicas; the
#: trainer sums (and clips) itself, so its optimizer overrides this.
KERAS_ALL_REDUCE = "_all_reduce_sum_gradients"


def check_all_reduce_hook():
    """Fails if Keras no longer sums gradients through `KERAS_ALL_REDUCE`.

    Overriding a method Keras stopped calling would silently sum twice.
    """
    _require(keras.optimizers.Optimizer, KERAS_ALL_REDUCE, "keras")


def flatten_layers(model):
    """Every layer nested in `model` (Keras has no public recursive listing)."""
    return list(_require(model, "_flatten_layers", "keras")(include_self=False))


#: what Keras' `enable_lora` adds to a Dense/EinsumDense layer.
LORA_WEIGHTS = ("lora_kernel_a", "lora_kernel_b")


def merge_lora(layer):
    """Folds a layer's LoRA adapters into its kernel and removes them.

    Keras merges adapters only into saved weight files (`save_own_variables`);
    an in-memory model keeps computing `kernel + A @ B` and keeps the adapter
    variables, which a SavedModel would then carry. After this the layer is
    the plain layer it was before `enable_lora`, with the merged kernel.
    """
    kernel = _require(layer, "_kernel", "keras")
    merged = keras.ops.convert_to_tensor(layer.kernel)  # kernel + alpha / rank * A @ B
    kernel.assign(keras.ops.cast(merged, kernel.dtype))
    adapters = {id(_require(layer, name, "keras")) for name in LORA_WEIGHTS}
    tracker = _require(layer, "_tracker", "keras")
    tracker.unlock()
    layer._trainable_variables[:] = [
        v for v in _require(layer, "_trainable_variables", "keras") if id(v) not in adapters
    ]
    for name in LORA_WEIGHTS:
        object.__delattr__(layer, name)
    tracker.lock()
    layer.lora_enabled = False
    kernel.trainable = True


def wordpiece_split_patterns(split_on_cjk):
    """`(delimiters, kept delimiters)` regexes of keras-hub's WordPiece pre-splitting.

    Words split with these are never cut again by the tokenizer's own
    pre-splitting; keras-hub does not export them.
    """
    from keras_hub.src.tokenizers import word_piece_tokenizer as wordpiece

    if split_on_cjk:
        names = ("WHITESPACE_PUNCTUATION_AND_CJK_REGEX", "PUNCTUATION_AND_CJK_REGEX")
    else:
        names = ("WHITESPACE_AND_PUNCTUATION_REGEX", "PUNCTUATION_REGEX")
    return tuple(_require(wordpiece, name, "keras-hub") for name in names)


def byte_pair_ids(tokenizer, words, whole):
    """keras-hub byte-level BPE on words already split: `[words]` -> `[words, (ids)]`.

    keras-hub's `BytePairTokenizer` merges (and caches) only inside its own
    `_tokenize_tf`, after its own split of the text, which cannot be
    replaced; `HfBytePairTokenizer` splits as the checkpoint's tokenizer does
    and merges through this.

    Args:
        tokenizer: a keras-hub `BytePairTokenizer`.
        words: a 1-D string tensor of pre-tokens (not empty).
        whole: a bool tensor like `words`: vocabulary tokens as they are
            (added tokens), looked up without merging.

    Returns:
        A ragged int32 `[words, (ids)]` (token strings if the tokenizer's
        dtype is a string); unknown tokens are -1, as in keras-hub.
    """
    import tensorflow as tf

    _require(tokenizer, "_maybe_initialized_tf", "keras-hub")()
    cache = _require(tokenizer, "cache", "keras-hub")
    merge = _require(tokenizer, "_bpe_merge_and_update_cache_tf", "keras-hub")
    found = cache.lookup(words)
    unseen = (found == "") & ~whole

    def merged():
        merge(tf.boolean_mask(words, unseen))
        return cache.lookup(words)

    joined = tf.cond(tf.reduce_any(unseen), merged, lambda: found)
    tokens = tf.strings.split(tf.where(whole, words, joined), sep=" ")
    if tokenizer.compute_dtype == "string":
        return tokens
    ids = _require(tokenizer, "token_to_id_map", "keras-hub").lookup(tokens)
    return tf.cast(ids, tokenizer.compute_dtype)


def build_decoder_cache(causal_lm, token_ids):
    """`(hidden states, cache)` of a keras-hub CausalLM after reading `token_ids`.

    The cache is `[batch, layers, 2, length, heads, head_dim]` for every
    keras-hub decoder (GPT-2, Llama, Mistral, Gemma, ...); its length is
    `token_ids`' length. `call_with_cache` is public, the builder is not.
    """
    return _require(causal_lm, "_build_cache", "keras-hub")(token_ids)


def llama_style_parts(causal_lm):
    """`(token_embedding, transformer_layers, final norm)` of a Llama/Mistral CausalLM.

    Their `call_with_cache` is embedding -> layers (each with its own
    `[batch, 2, length, heads, head_dim]` cache) -> norm -> tied or separate
    output projection. Calling the layers directly keeps one cache per
    layer in the decoding loop instead of slicing and re-stacking the whole
    6-D cache every token (2x faster at batch 8 on CPU, BENCHMARKS.md).
    None for other families.
    """
    families = (keras_hub.models.LlamaCausalLM, keras_hub.models.MistralCausalLM)
    if not isinstance(causal_lm, families):
        return None
    backbone = causal_lm.backbone
    return tuple(
        _require(backbone, name, "keras-hub")
        for name in ("token_embedding", "transformer_layers", "layer_norm")
    )


def llama_layer_parts(layer):
    """A keras-hub Llama decoder layer's sublayers, for `LeanLlama`.

    Returns a dict: `attention_norm`, `feedforward_norm` (LlamaLayerNorm),
    `dense` (query, key, value, output, gate, up, down: Einsum/Dense
    layers), `rotary` (the attention's rotary layer), `scale` (the
    attention's 1/sqrt(head_dim)) and `activation` (the gate's).
    """
    attention = _require(layer, "_self_attention_layer", "keras-hub")
    dense = {
        "query": _require(attention, "_query_dense", "keras-hub"),
        "key": _require(attention, "_key_dense", "keras-hub"),
        "value": _require(attention, "_value_dense", "keras-hub"),
        "output": _require(attention, "_output_dense", "keras-hub"),
        "gate": _require(layer, "_feedforward_gate_dense", "keras-hub"),
        "up": _require(layer, "_feedforward_intermediate_dense", "keras-hub"),
        "down": _require(layer, "_feedforward_output_dense", "keras-hub"),
    }
    return {
        "attention_norm": _require(layer, "_self_attention_layernorm", "keras-hub"),
        "feedforward_norm": _require(layer, "_feedforward_layernorm", "keras-hub"),
        "dense": dense,
        "rotary": _require(attention, "rotary_embedding_layer", "keras-hub"),
        "scale": _require(attention, "_inv_norm_factor", "keras-hub"),
        "activation": _require(layer, "activation", "keras-hub"),
    }


def check():
    """Probes every internal above on small objects; raises `CompatError`."""
    tokenizer_vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(tokenizer_vocab),
        num_layers=1,
        num_heads=1,
        hidden_dim=4,
        intermediate_dim=4,
        max_sequence_length=8,
    )
    bert_layers(backbone)
    set_exact_gelu(backbone)
    optimizer = keras.optimizers.AdamW()
    optimizer.build(backbone.trainable_variables)
    adam_slots(optimizer, backbone.trainable_variables[0])
    check_all_reduce_hook()
    flatten_layers(backbone)
    wordpiece_split_patterns(True)
    wordpiece_split_patterns(False)
    decoder = keras_hub.models.GPT2Backbone(
        vocabulary_size=8,
        num_layers=1,
        num_heads=1,
        hidden_dim=4,
        intermediate_dim=4,
        max_sequence_length=8,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=decoder, preprocessor=None)
    _, cache = build_decoder_cache(causal_lm, keras.ops.ones((1, 3), "int32"))
    if tuple(cache.shape) != (1, 1, 2, 3, 1, 4):
        raise CompatError(f"keras-hub's decoder cache layout changed: shape {tuple(cache.shape)}")
    llama = keras_hub.models.Llama3Backbone(
        vocabulary_size=8,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=4,
        intermediate_dim=4,
    )
    if llama_style_parts(keras_hub.models.Llama3CausalLM(backbone=llama)) is None:
        raise CompatError("keras-hub's Llama3CausalLM is no longer a LlamaCausalLM")
    llama_layer_parts(llama.transformer_layers[0])
    import tensorflow as tf

    bpe = keras_hub.tokenizers.BytePairTokenizer(
        vocabulary={"a": 0, "b": 1, "ab": 2}, merges=["a b"], _allow_python_workflow=False
    )
    ids = byte_pair_ids(bpe, tf.constant(["ab", "b"]), tf.constant([False, True]))
    if ids.to_list() != [[2], [1]]:
        raise CompatError(f"keras-hub's BPE merged `ab`, `b` into {ids.to_list()}, not [[2], [1]]")
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.enable_lora(1)
    merge_lora(dense)
    if len(dense.weights) != 2:
        raise CompatError(f"merge_lora left {len(dense.weights)} weights on a Dense layer, not 2")
