"""Llama's forward pass in few ops: `CachedDecoder`'s step, and training's forward.

keras-hub's Llama layers, called with a cache, recompute the causal mask and
the rotary angles in every layer, copy and re-stack the key/value cache, and
repeat the 3 key/value heads to the 9 query heads (SmolLM2) before
attention: 193 graph ops per layer and token (82 here). Decoding one token
at a time is dominated by that per-op overhead on CPU (BENCHMARKS.md), so
this step computes the same function on the same weights with what a token
needs and nothing else:

- the rotary angles and the attention mask once per step for all layers
  (the rotary layer itself computes the angles, so every keras-hub rope
  variant stays exact);
- one key and one value cache per layer, laid out `[batch, kv_heads, length,
  head_dim]`, updated in place at the step's position;
- grouped-query attention without repeating keys and values: the query heads
  that share a key/value head are stacked as rows of one matmul.

The same layers without a cache are the training forward pass
(`LeanCausalLM`): there the rotary angles and mask once per batch, grouped
attention and fewer transposes make a SmolLM2 step faster (BENCHMARKS.md,
"Fine-tuning speed against HF `Trainer`").

keras-hub has no such step (its `call_with_cache` is the per-layer loop this
replaces); tests check the logits and gradients against keras-hub's own.

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer.models.lean_llama import LeanLlama
>>> backbone = keras_hub.models.LlamaBackbone(vocabulary_size=11, num_layers=2,
...     num_query_heads=4, num_key_value_heads=2, hidden_dim=8, intermediate_dim=16)
>>> lm = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
>>> step = LeanLlama(lm)
>>> cache = step.read_prompts(tf.constant([[1, 2, 3]]), total=6)
>>> logits, cache = step.step(tf.constant([[4]]), cache, 3)
>>> logits.shape.as_list(), cache[0].shape.as_list()
([1, 1, 11], [1, 2, 6, 2])
"""

import math

import keras
import keras_hub
import tensorflow as tf

# The module, not `tftransfer.compat`: the package's `check()` runs this forward.
from tftransfer.compat import keras_hub_internals
from tftransfer.models import fused_elementwise
from tftransfer.models.serving_weights import embedded, in_dtype, preparing


def _rms_norm(layer, x, fused):
    """keras-hub's LlamaLayerNorm: float32 statistics, scale, compute dtype out."""
    weight, epsilon = keras_hub_internals.llama_norm_weights(layer)
    return fused_elementwise.scaled_rms(x, tf.cast(weight, tf.float32), epsilon, fused)


def tied_logits(token_embedding, x):
    """Logits of a keras-hub `ReversibleEmbedding` (`token_embedding(x, reverse=True)`).

    Keras' ReversibleEmbedding transposes the tied [vocabulary, hidden]
    table on every call: a 113 MB copy per token for SmolLM2. A matmul with
    transpose_b reads it in place, and an export casts it to the compute
    type once.
    """
    emb = token_embedding
    if emb.logit_soft_cap is not None or emb.reverse_dtype:
        return emb(x, reverse=True)
    flat = tf.reshape(x, [-1, tf.shape(x)[-1]])
    if emb.tie_weights:
        logits = tf.matmul(flat, in_dtype(emb, "embeddings", flat.dtype), transpose_b=True)
    else:  # [hidden, vocabulary]
        logits = tf.matmul(flat, in_dtype(emb, "reverse_embeddings", flat.dtype))
    return tf.reshape(logits, tf.concat([tf.shape(x)[:-1], [-1]], axis=0))


def _times(x, dense, dtype, halves=False):
    """`x @ kernel` for a 2-D `x` and an EinsumDense (LoRA-merged if enabled), in `dtype`.

    The kernel is cast here, not left to Keras: outside a Keras `call`
    (evaluation, decoding) nothing autocasts the float32 variables, and
    `tf.matmul` of bfloat16 activations by a float32 kernel silently
    computes in float32. An export casts once (`serving_weights`), not at
    every decoded token, and stores the kernel transposed: oneDNN
    multiplies the few rows of a decoding step by `[columns, rows]`
    kernels faster (1.05-1.13x a generated token, BENCHMARKS.md).

    `halves`: two products, one per half of the columns. A product of a
    few rows keeps one core busy; two independent ones run side by side on
    TensorFlow's inter-op threads (1.2-2x for a product nothing else runs
    beside, BENCHMARKS.md). Rows of the transposed kernel are
    sliced, which shares its memory; the sums are the same.
    """
    rows = x.shape[-1]
    transposed = preparing()
    kernel = in_dtype(
        dense, "kernel", dtype, lambda k: tf.reshape(k, [rows, -1]), transposed=transposed
    )
    if not (halves and transposed):
        return tf.matmul(x, kernel, transpose_b=transposed)
    half = kernel.shape[0] // 2
    parts = [tf.matmul(x, part, transpose_b=True) for part in (kernel[:half], kernel[half:])]
    return tf.concat(parts, axis=1)


class LeanLlama:
    """Cached forward pass of a keras-hub `LlamaCausalLM` (Llama 2/3, SmolLM2).

    Args:
        causal_lm: a keras-hub `LlamaCausalLM` without biases or quantized
            layers (`LeanLlama.supports` says whether).
    """

    def __init__(self, causal_lm):
        backbone = causal_lm.backbone
        self.token_embedding, layers, self.norm = keras_hub_internals.llama_style_parts(causal_lm)
        self.layers = [keras_hub_internals.llama_layer_parts(layer) for layer in layers]
        self.heads = backbone.num_query_heads
        self.kv_heads = backbone.num_key_value_heads
        self.hidden = backbone.hidden_dim
        self.head_dim = self.hidden // self.heads
        self.groups = self.heads // self.kv_heads
        self.dtype = causal_lm.compute_dtype
        # One power-of-two attention scale (head_dim 64, 256): scaling the
        # queries' rotary factors, once per pass, scales the scores exactly
        # and saves every layer a pass over [.., tokens, tokens].
        scale, *others = {parts["scale"] for parts in self.layers}
        self.folded_scale = scale if not others and math.frexp(scale)[0] == 0.5 else None

    @staticmethod
    def supports(causal_lm, training=False):
        """Whether to run `causal_lm` through this: allowed (`backbone.fast_forward`) and exact.

        The one place the fast forward is chosen: training, evaluation, the
        export's `score` and cached generation all ask here.
        """
        if not isinstance(causal_lm, keras_hub.models.LlamaCausalLM):
            return False
        if getattr(causal_lm.backbone, "_tftransfer_fast_forward", True) is False:
            return False
        if training and causal_lm.backbone.dropout:
            return False
        for layer in keras_hub_internals.llama_style_parts(causal_lm)[1]:
            for dense in keras_hub_internals.llama_layer_parts(layer)["dense"].values():
                if getattr(dense, "bias", None) is not None or dense.quantization_mode:
                    return False
        return True

    # -- the `_Model` interface of `CachedDecoder` ---------------------------
    def read_prompts(self, token_ids, total):
        """Caches (`2 x layers` tensors) after reading `token_ids`, `total` long."""
        shape = [tf.shape(token_ids)[0], self.kv_heads, total, self.head_dim]
        empty = tuple(tf.zeros(shape, self.dtype) for _ in range(2 * len(self.layers)))
        return self.step(token_ids, empty, 0, with_logits=False)[1]

    def step(self, token_ids, cache, index, with_logits=True):
        """`(logits, caches)` for `token_ids` `[batch, tokens]` from position `index`."""
        x = embedded(self.token_embedding, token_ids, self.dtype)
        tokens = tf.shape(token_ids)[1]
        total = tf.shape(cache[0])[2]
        rotary = self._rotary(tokens, index)
        # Query i (at index + i) sees cache positions up to index + i.
        visible = tf.range(total)[None, :] <= index + tf.range(tokens)[:, None]
        bias = self._bias(visible)
        # Where this step's keys and values go in every layer's caches:
        # `[batch, kv_heads, tokens, 3]` indices for `tensor_scatter_nd_update`
        # (a quarter of `slice_update`'s XlaDynamicUpdateSlice time a call on CPU).
        rows, heads, positions = tf.meshgrid(
            tf.range(tf.shape(token_ids)[0]),
            tf.range(self.kv_heads),
            index + tf.range(tokens),
            indexing="ij",
        )
        at = tf.stack([rows, heads, positions], axis=-1)
        updated = []
        for i, parts in enumerate(self.layers):
            x, kv = self._layer(parts, x, rotary, bias, cache[2 * i : 2 * i + 2], at)
            updated += kv
        if not with_logits:
            return None, tuple(updated)
        return self.logits(self.norm(x)), tuple(updated)

    def forward(self, token_ids, padding_mask, training=False):
        """Logits `[batch, tokens, vocabulary]` of whole sequences (training, scoring).

        Dropout is not applied (`supports` requires none); padding is masked
        as keras-hub masks it (a query sees the real tokens up to itself).
        `training`: the element-wise chains compiled by XLA
        (`fused_elementwise`), which exports must not contain.
        """
        x = embedded(self.token_embedding, token_ids, self.dtype)
        tokens = tf.shape(token_ids)[1]
        rotary = self._rotary(tokens, 0)
        causal = tf.range(tokens)[None, :] <= tf.range(tokens)[:, None]
        visible = tf.logical_and(causal[None], tf.cast(padding_mask, tf.bool)[:, None, :])
        bias = self._bias(visible)[:, None]  # [batch, 1, groups * tokens, tokens]
        for parts in self.layers:
            x, _ = self._layer(parts, x, rotary, bias, fused=training)
        return self.logits(self.norm(x))

    def logits(self, x):
        return tied_logits(self.token_embedding, x)

    # -- pieces ---------------------------------------------------------------
    def _bias(self, visible):
        """Additive attention mask `[..., groups * queries, keys]` from `[..., queries, keys]`.

        -1e9 is keras' Softmax mask value for float32; the rows repeat for
        the query heads of a group, stacked as in `_layer`.
        """
        bias = tf.where(visible, 0.0, -1e9)
        return tf.concat([bias] * self.groups, axis=-2)

    def _rotary(self, tokens, index):
        """`(cos, sin)` `[1, tokens, 1, head_dim]` of the rotary layer at `index`, and the queries'.

        The layer rotates x by cos(x) + rotate_half(x) sin; on all-ones input
        its halves are cos - sin and cos + sin, which gives both back
        whatever scaling variant the layer implements.
        """
        rotary = self.layers[0]["rotary"]
        ones = tf.ones([1, tokens, 1, self.head_dim], self.dtype)
        first, second = tf.split(rotary(ones, start_index=index), 2, axis=-1)
        cos, sin = (first + second) / 2, (second - first) / 2
        # rotate_half(x) * [sin, sin] == roll(x, half) * [-sin, sin]: 4 ops a rotation, not 6
        cos, sin = tf.concat([cos, cos], axis=-1), tf.concat([-sin, sin], axis=-1)
        if self.folded_scale is None:
            return cos, sin, cos, sin
        return cos, sin, cos * self.folded_scale, sin * self.folded_scale

    def _rotate(self, x, cos, signed_sin, fused):
        if fused:
            return fused_elementwise.rotate(x, cos, signed_sin, fused=True)
        if x.shape[1] == 1:  # one token: TF's Roll costs more than this on small tensors
            first, second = tf.split(x, 2, axis=-1)
            return x * cos + tf.concat([second, first], axis=-1) * signed_sin
        return x * cos + tf.roll(x, self.head_dim // 2, axis=-1) * signed_sin

    def _layer(self, parts, x, rotary, bias, cache=None, at=None, fused=False):
        """One decoder layer: `(x, (keys, values))`, the caches updated (at `at`) if given.

        `fused`: element-wise chains compiled by XLA (training only).
        """
        cos, sin, query_cos, query_sin = rotary
        dense = parts["dense"]
        batch, tokens = tf.shape(x)[0], tf.shape(x)[1]
        h = _rms_norm(parts["attention_norm"], x, fused)
        flat = tf.reshape(h, [-1, self.hidden])

        def project(name, heads):
            y = _times(flat, dense[name], self.dtype)
            return tf.reshape(y, [batch, tokens, heads, self.head_dim])

        # One token (decoding): [batch, 1, heads, dim] is [batch, heads, 1, dim]
        # in memory, so reshapes replace the transposes (4 ops a layer).
        one = x.shape[1] == 1
        heads_first = (
            (lambda t: tf.reshape(t, [batch, -1, 1, self.head_dim]))
            if one
            else (lambda t: tf.transpose(t, [0, 2, 1, 3]))
        )
        # keys and values as [batch, kv_heads, tokens, head_dim]
        k = heads_first(self._rotate(project("key", self.kv_heads), cos, sin, fused))
        q = self._rotate(project("query", self.heads), query_cos, query_sin, fused)
        v = heads_first(project("value", self.kv_heads))
        if cache is not None:
            k = tf.tensor_scatter_nd_update(cache[0], at, k)
            v = tf.tensor_scatter_nd_update(cache[1], at, v)
        # [batch, tokens, kv, groups, head_dim] -> [batch, kv, groups * tokens, head_dim]
        if not one:
            q = tf.reshape(q, [batch, tokens, self.kv_heads, self.groups, self.head_dim])
            q = tf.transpose(q, [0, 2, 3, 1, 4])
        q = tf.reshape(q, [batch, self.kv_heads, -1, self.head_dim])
        scores = tf.matmul(q, k, transpose_b=True)
        if self.folded_scale is None:
            scores *= parts["scale"]
        weights = fused_elementwise.masked_softmax(scores, bias, fused)
        out = tf.matmul(weights, v)
        if not one:
            out = tf.reshape(out, [batch, self.kv_heads, self.groups, tokens, self.head_dim])
            out = tf.transpose(out, [0, 3, 1, 2, 4])
        out = tf.reshape(out, [-1, self.hidden])
        # The output and down projections run alone: in halves when decoding.
        x = x + tf.reshape(_times(out, dense["output"], self.dtype, one), tf.shape(x))

        h = tf.reshape(_rms_norm(parts["feedforward_norm"], x, fused), [-1, self.hidden])
        gate = _times(h, dense["gate"], self.dtype)
        up = _times(h, dense["up"], self.dtype)
        if parts["activation"] in (keras.ops.silu, keras.activations.silu):  # ops: keras-hub's
            gated = fused_elementwise.silu_gated(gate, up, fused)
        else:
            gated = up * tf.cast(parts["activation"](tf.cast(gate, tf.float32)), self.dtype)
        down = _times(gated, dense["down"], self.dtype, one)
        return x + tf.reshape(down, tf.shape(x)), (k, v)


class LeanCausalLM(keras.Model):
    """A Llama causal LM's training view: the same weights, `LeanLlama.forward`.

    Args:
        causal_lm: a keras-hub `LlamaCausalLM` that `LeanLlama.supports`.
    """

    def __init__(self, causal_lm, **kwargs):
        super().__init__(**kwargs)
        self.causal_lm = causal_lm
        self.lean = LeanLlama(causal_lm)

    def call(self, inputs, training=False):
        # No dropout (LeanLlama.supports(..., training=True)); training fuses.
        return self.lean.forward(inputs["token_ids"], inputs["padding_mask"], training=training)
