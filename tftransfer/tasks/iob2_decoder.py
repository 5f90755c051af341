"""The most probable valid IOB2 tag sequence of a sentence, in-graph.

Taking each word's most probable tag can give sequences no annotator would
write (`O I-PER`, `B-LOC I-ORG`). Constrained Viterbi decoding picks, among
the sequences where every `I-X` follows `B-X` or `I-X`, the one with the
highest product of the per-word probabilities: a CRF's decoding with fixed
0/-inf transitions (AllenNLP's `allowed_transitions`), so it needs no
training. On CoNLL-2003 it adds 0.6-0.8 test F1 to the same checkpoint
(BENCHMARKS.md). Ragged TF ops only, so evaluation and the exported serving
graph decode alike. Written here because keras-hub and tf-text have no such
decoding and tensorflow-addons (which had `crf_decode`) is end-of-life and
not built for current TensorFlow.

Example:

```python
import tensorflow as tf
from tftransfer.tasks import iob2_decoder

labels = ["O", "B-PER", "I-PER"]
probabilities = tf.ragged.constant([[[0.45, 0.4, 0.15], [0.1, 0.1, 0.8]]], ragged_rank=1)
iob2_decoder.decode(probabilities, labels).to_list()  # [[1, 2]]: B-PER I-PER, not O I-PER
```
"""

import numpy as np
import tensorflow as tf

from tftransfer.data import tag_schemes

# Large enough to rule a transition out, small enough that sums stay finite.
_FORBIDDEN = -1e4


def transitions(labels):
    """`(start [K], transitions [K, K])` log-scores: 0 allowed, very negative not.

    `transitions[i, j]` scores tag `j` following tag `i`.
    """
    parsed = [tag_schemes.split_tag(label) for label in labels]
    start = np.zeros(len(labels), np.float32)
    allowed = np.ones((len(labels), len(labels)), bool)
    for j, (prefix, kind) in enumerate(parsed):
        if prefix == "I":
            start[j] = _FORBIDDEN
            allowed[:, j] = [p in ("B", "I") and k == kind for p, k in parsed]
    return start, np.where(allowed, 0.0, _FORBIDDEN).astype(np.float32)


def decode(probabilities, labels):
    """Ragged `[batch, (words), tags]` probabilities -> ragged `[batch, (words)]` tag ids."""
    start, table = (tf.constant(t) for t in transitions(labels))
    lengths = probabilities.row_lengths()
    dense = tf.math.log(tf.maximum(probabilities.to_tensor(), 1e-12))
    # At least two steps: `tf.scan` over no elements fails in a graph whose
    # shapes are not static (a batch of one-word or empty sentences).
    dense = tf.pad(dense, [[0, 0], [0, tf.maximum(2 - tf.shape(dense)[1], 0)], [0, 0]])
    steps = tf.transpose(dense, [1, 0, 2])  # [words, batch, tags]
    real = tf.transpose(tf.sequence_mask(lengths, tf.shape(steps)[0]))  # [words, batch]
    num_tags = len(labels)
    stay = tf.broadcast_to(tf.range(num_tags), tf.shape(steps[0]))

    def forward(carry, inputs):
        score, _ = carry
        emission, is_word = inputs
        candidates = score[:, :, None] + table[None]  # [batch, previous, current]
        best = tf.reduce_max(candidates, axis=1) + emission
        pointer = tf.argmax(candidates, axis=1, output_type=tf.int32)
        # Past a sentence's end the score is carried and the pointer keeps
        # the tag, so backtracking starts at the sentence's last word.
        is_word = is_word[:, None]
        return tf.where(is_word, best, score), tf.where(is_word, pointer, stay)

    first = steps[0] + start
    scores, pointers = tf.scan(forward, (steps[1:], real[1:]), initializer=(first, stay))
    last = tf.argmax(scores[-1], axis=-1, output_type=tf.int32)
    earlier = tf.scan(
        lambda tag, pointer: tf.gather(pointer, tag, batch_dims=1),
        pointers,
        initializer=last,
        reverse=True,
    )
    tags = tf.transpose(tf.concat([earlier, last[None]], 0))
    return tf.RaggedTensor.from_tensor(tags, lengths=lengths)
