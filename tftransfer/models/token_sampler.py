"""Pick the next token from logits: greedy, or sampled with temperature, top-k, top-p.

keras-hub's samplers fix their settings and seed when built (Python values, a
stateful seed generator); a SavedModel signature needs them as inputs of one
graph, and a request's seed must give the same text in any process. So the
choice is made here from tensors, with stateless random ops seeded by
`(seed, position)`.

Example:

>>> import tensorflow as tf
>>> from tftransfer.models import token_sampler
>>> logits = tf.constant([[0.0, 3.0, 1.0]])
>>> token_sampler.next_tokens(logits, temperature=0.0, top_k=0, top_p=1.0,
...                           seed=0, position=5).numpy().tolist()  # greedy
[1]
>>> token_sampler.next_tokens(logits, temperature=1.0, top_k=1, top_p=1.0,
...                           seed=7, position=5).numpy().tolist()  # top-1 is greedy
[1]
"""

import tensorflow as tf


def _keep_top_k(logits, k):
    vocab = tf.shape(logits)[-1]
    k = tf.minimum(k, vocab)
    kth = tf.math.top_k(logits, k=k, sorted=True).values[:, -1:]
    return tf.where(logits >= kth, logits, -float("inf"))


def _keep_top_p(logits, p):
    # The smallest set of most likely tokens whose probability reaches p
    # (always at least the most likely one).
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    probabilities = tf.nn.softmax(ordered, axis=-1)
    before = tf.cumsum(probabilities, axis=-1, exclusive=True)
    kept = tf.where(before < p, ordered, float("inf"))
    threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
    return tf.where(logits >= threshold, logits, -float("inf"))


def next_tokens(logits, temperature, top_k, top_p, seed, position):
    """The next token of each row.

    Args:
        logits: `[batch, vocabulary]`.
        temperature: scalar; 0 (or less) = greedy (argmax).
        top_k: scalar int; sample among the k most likely (0 = all).
        top_p: scalar; sample among the most likely tokens whose
            probabilities sum to p (1 = all).
        seed: scalar int; the same seed gives the same tokens.
        position: scalar int, the position being filled (mixed into the seed).

    Returns:
        int32 `[batch]`.
    """
    logits = tf.cast(logits, tf.float32)
    temperature = tf.cast(temperature, tf.float32)
    top_k = tf.cast(top_k, tf.int32)
    top_p = tf.cast(top_p, tf.float32)

    def sample():
        scaled = logits / temperature
        scaled = tf.cond(top_k > 0, lambda: _keep_top_k(scaled, top_k), lambda: scaled)
        scaled = tf.cond(top_p < 1.0, lambda: _keep_top_p(scaled, top_p), lambda: scaled)
        seeds = tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)])
        return tf.random.stateless_categorical(scaled, 1, seed=seeds, dtype=tf.int32)[:, 0]

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return tf.cond(temperature > 0.0, sample, greedy)
