"""Autoregressive decoding with a key/value cache, as one graph.

keras-hub's `CausalLM.generate` does the same on a compiled Keras function
with samplers whose settings are fixed when built; the export's `generate`
signature needs the number of new tokens, the temperature, top-k, top-p and
the seed as inputs, and the loop inside the SavedModel (`tf.while_loop`), so
the loop is written here on keras-hub's public `call_with_cache`.

Rows are right-padded prompts of different lengths. As in keras-hub, one
position index advances for the whole batch from the shortest prompt on;
rows whose prompt is longer keep their own token at that position. Each
row stops at a stop token or after `max_new_tokens` of its own.

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer.models.cached_decoder import CachedDecoder
>>> backbone = keras_hub.models.GPT2Backbone(vocabulary_size=10, num_layers=1,
...     num_heads=1, hidden_dim=8, intermediate_dim=8, max_sequence_length=16)
>>> lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
>>> decoder = CachedDecoder(lm, stop_ids=[9], pad_id=0, max_length=16)
>>> prompts = tf.ragged.constant([[1, 2, 3], [4]])
>>> new = decoder(prompts, max_new_tokens=4)
>>> new.shape[0], [len(row) <= 4 for row in new.to_list()]
(2, [True, True])
"""

import tensorflow as tf

from tftransfer import compat
from tftransfer.models import token_sampler
from tftransfer.models.lean_llama import LeanLlama, tied_logits


class CachedDecoder:
    """Generates continuations of token-id prompts with a keras-hub CausalLM.

    Args:
        causal_lm: a keras-hub `CausalLM` (`call_with_cache`).
        stop_ids: token ids that end a row (not part of the output).
        pad_id: the id written where nothing is generated.
        max_length: the longest sequence (prompt + new tokens) decoded.
        jit_compile: compile the per-token step with XLA (slower than the
            lean Llama step without it on our CPUs, BENCHMARKS.md; a graph
            TF Serving runs only with `--xla_cpu_compilation_enabled`); the cache length is then
            rounded up to a multiple of `JIT_LENGTH_STEP` so that few shapes
            are compiled.
    """

    JIT_LENGTH_STEP = 64

    def __init__(self, causal_lm, stop_ids, pad_id, max_length, jit_compile=False):
        self.causal_lm = causal_lm
        self.stop_ids = sorted({int(i) for i in stop_ids})
        self.pad_id = int(pad_id)
        self.max_length = int(max_length)
        self.jit_compile = bool(jit_compile)

    def _layout(self, prompts, max_new_tokens):
        """`(token_ids [batch, total], lengths, longest, total, limit)` for a generation.

        `token_ids` holds the prompts, padded to `total` (the longest prompt
        plus `max_new_tokens`, within `max_length`; rounded up to a multiple
        of `JIT_LENGTH_STEP` under XLA, so that few lengths compile);
        `limit` is where each row must stop.
        """
        prompts = tf.cast(prompts, tf.int32)
        lengths = tf.cast(prompts.row_lengths(), tf.int32)
        longest = tf.reduce_max(lengths)
        max_new_tokens = tf.maximum(tf.cast(max_new_tokens, tf.int32), 0)
        total = tf.minimum(longest + max_new_tokens, self.max_length)
        limit = tf.minimum(lengths + max_new_tokens, total)
        if self.jit_compile:
            step_size = self.JIT_LENGTH_STEP
            total = tf.minimum((total + step_size - 1) // step_size * step_size, self.max_length)
        token_ids = prompts.to_tensor(self.pad_id)
        token_ids = tf.pad(token_ids, [[0, 0], [0, total - longest]], constant_values=self.pad_id)
        return token_ids, lengths, longest, total, limit

    def __call__(self, prompts, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=0):
        """Continues each prompt.

        Args:
            prompts: ragged int `[batch, (length)]`, each at least one token
                long and at most `max_length - 1`.
            max_new_tokens: scalar int, new tokens per row at most.
            temperature, top_k, top_p, seed: see `token_sampler.next_tokens`.

        Returns:
            Ragged int32 `[batch, (new)]`: the new tokens of each row, stop
            token excluded.
        """
        token_ids, lengths, longest, total, limit = self._layout(prompts, max_new_tokens)
        model = _Model.of(self.causal_lm)
        cache = model.read_prompts(token_ids[:, :longest], total)
        forward = model.step
        if self.jit_compile:
            forward = tf.function(model.step, jit_compile=True, autograph=False)
        stop_ids = tf.constant(self.stop_ids or [-1], tf.int32)
        batch = tf.shape(token_ids)[0]

        def step(index, token_ids, generated, done, *cache):
            # gather keeps the token axis statically 1 (a slice would not)
            previous = tf.gather(token_ids, [index - 1], axis=1)
            logits, cache = forward(previous, cache, index - 1)
            chosen = token_sampler.next_tokens(
                logits[:, -1, :], temperature, top_k, top_p, seed, index
            )
            in_prompt = index < lengths
            fresh = tf.logical_and(tf.logical_not(in_prompt), tf.logical_not(done))
            chosen = tf.where(in_prompt, token_ids[:, index], chosen)
            chosen = tf.where(tf.logical_or(in_prompt, fresh), chosen, self.pad_id)
            is_stop = tf.reduce_any(tf.equal(chosen[:, None], stop_ids[None, :]), axis=-1)
            column = tf.equal(tf.range(total), index)[None, :]
            token_ids = tf.where(column, chosen[:, None], token_ids)
            keep = tf.logical_and(fresh, tf.logical_not(is_stop))
            generated = tf.logical_or(generated, tf.logical_and(column, keep[:, None]))
            finished = tf.logical_or(is_stop, index + 1 >= limit)
            done = tf.logical_or(done, tf.logical_and(fresh, finished))
            return (index + 1, token_ids, generated, done, *cache)

        def more(index, token_ids, generated, done, *cache):
            del token_ids, cache, generated
            return tf.logical_and(index < total, tf.logical_not(tf.reduce_all(done)))

        start = tf.reduce_min(lengths)
        generated = tf.zeros([batch, total], tf.bool)
        done = lengths >= limit
        unknown = lambda rank: tf.TensorShape([None] * rank)  # noqa: E731
        _, token_ids, generated, _, *_ = tf.while_loop(
            more,
            step,
            (start, token_ids, generated, done, *cache),
            shape_invariants=(
                tf.TensorShape([]),
                unknown(2),
                unknown(2),
                unknown(1),
                *[unknown(c.shape.rank) for c in cache],
            ),
        )
        return tf.ragged.boolean_mask(token_ids, generated)


class _Model:
    """The causal LM's cached forward pass: the whole 6-D cache, or one per layer."""

    def __init__(self, causal_lm):
        self.causal_lm = causal_lm

    @staticmethod
    def of(causal_lm):
        if LeanLlama.supports(causal_lm):
            return LeanLlama(causal_lm)
        parts = compat.llama_style_parts(causal_lm)
        return _PerLayer(causal_lm, *parts) if parts else _Model(causal_lm)

    def read_prompts(self, token_ids, total):
        """Caches (a tuple of tensors) after reading `token_ids`, `total` long."""
        _, cache = compat.build_decoder_cache(self.causal_lm, token_ids)
        longest = tf.shape(token_ids)[1]
        return (tf.pad(cache, [[0, 0], [0, 0], [0, 0], [0, total - longest], [0, 0], [0, 0]]),)

    def step(self, token_ids, cache, index):
        """`(logits, caches)` for `token_ids` at position `index`."""
        logits, _, cache = self.causal_lm.call_with_cache(token_ids, cache[0], index)
        return logits, (cache,)


class _PerLayer(_Model):
    """Llama/Mistral: calls the layers with one cache each (see `compat.llama_style_parts`)."""

    def __init__(self, causal_lm, token_embedding, layers, norm):
        super().__init__(causal_lm)
        self.token_embedding, self.layers, self.norm = token_embedding, layers, norm

    def read_prompts(self, token_ids, total):
        backbone = self.causal_lm.backbone
        shape = [
            tf.shape(token_ids)[0],
            2,
            total,
            backbone.num_key_value_heads,
            backbone.hidden_dim // backbone.num_query_heads,
        ]
        empty = tuple(tf.zeros(shape, self.causal_lm.compute_dtype) for _ in self.layers)
        return self.step(token_ids, empty, 0, with_logits=False)[1]

    def step(self, token_ids, cache, index, with_logits=True):
        x = self.token_embedding(token_ids)
        updated = []
        for layer, layer_cache in zip(self.layers, cache):
            x, layer_cache = compat.decoder_layer_with_cache(layer, x, layer_cache, index)
            updated.append(layer_cache)
        if not with_logits:  # reading a prompt: only the caches are needed
            return None, tuple(updated)
        return self.logits(self.norm(x)), tuple(updated)

    def logits(self, x):
        return tied_logits(self.token_embedding, x)
