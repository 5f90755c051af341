"""A BERT encoder block in fewer, fusable ops: the packed rows' forward pass.

keras-hub's `TransformerEncoder` runs the query, key and value projections as
three einsums, adds each bias as a separate op, and BERT's exact GELU as an
unfused chain of element-wise ops (erfc, two multiplies, a negation, and
under bfloat16 two casts: `compat.exact_gelu`). On CPU that element-wise work
took about 240 of 321 ms of a bfloat16 MiniLM forward (BENCHMARKS.md, the op
profile on the Xeon with AMX). This computes the same function on the same
weights in the shape TensorFlow's CPU fusions take:

- one matmul for the query, key and value projections of a block (their
  kernels concatenated, so LoRA's merged kernels and their gradients still
  flow through each);
- every projection a 2-D `MatMul` followed by `BiasAdd`, which Grappler's
  remapper fuses into oneDNN's `_FusedMatMul`; in bfloat16 on oneDNN CPUs,
  where a bfloat16 `BiasAdd` is slow, the bias
  rides in the matmul instead (a column of ones), except before a GELU the
  remapper fuses;
- exact GELU written as `x * 0.5 * (1 + erf(x / sqrt(2)))` right after the
  feed-forward's `BiasAdd`: the remapper's `GeluExact` pattern, so when
  serving on a oneDNN CPU build the activation runs inside the matmul (in
  bfloat16 too, without the casts); without oneDNN, 16-bit GELU runs in
  float32 as before;
- in training, the element-wise work between the matmuls compiled by XLA,
  forward and backward, into a few loops (`fused_elementwise`; exports hold
  no XLA ops): the attention's scaling, mask and dropout around oneDNN's
  softmax; in post-norm blocks each output projection's bias, dropout,
  residual sum and layer norm, and the feed-forward's bias and GELU (those
  matmuls then have no bias to add); dropout draws 16 bits per element from
  its layer's seed (`lean_dropout`: other masks than Keras');
- in an export, the matmuls' operands (kernels concatenated, cast, bias rows
  appended) are prepared once and stored (`serving_weights`), not derived
  from the float32 variables on every request.

The attention's masking, softmax (in float32 where Keras takes
`ops.dot_product_attention`: no attention dropout; in training always),
dropout layers and layer norms are keras-hub's own layers or the same
formulas (the fused ones with their gradients written out,
tests/test_fused_elementwise.py), so outputs and
gradients match keras-hub's to float32 rounding (tests/test_lean_bert.py, and
`compat.check()` on a tiny model; in training with dropout, up to the masks).
Only rows that see no key at all (packing's padding, never read) differ: Keras
zeroes their attention, this spreads it.
Blocks it cannot compute exactly (quantized, gated, subclassed, uneven heads)
keep keras-hub's layers; `backbone.fast_forward: off` turns it off.

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer.backbones.lean_bert import LeanBert
>>> backbone = keras_hub.models.BertBackbone(vocabulary_size=11, num_layers=2,
...     num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> layer = backbone.transformer_layers[0]
>>> x = tf.random.normal([2, 5, 8])
>>> mask = tf.ones([2, 5, 5], "bool")
>>> lean = LeanBert.encoder_layer(layer, x, mask)
>>> bool(tf.reduce_max(tf.abs(lean - layer(x, attention_mask=mask))) < 1e-5)
True
"""

import keras
import keras_hub
import tensorflow as tf

# The modules, not `tftransfer.compat`: the package's `check()` runs this block.
from tftransfer.compat import keras_hub_internals as hub
from tftransfer.compat import keras_internals, tf_internals
from tftransfer.models import fused_elementwise, lean_dropout
from tftransfer.models.serving_weights import prepared, preparing

_SQRT_HALF = 0.7071067811865476


def _kernel(dense, rows):
    """A Dense/EinsumDense kernel as a `[rows, columns]` matrix (LoRA-merged if enabled)."""
    return tf.reshape(tf.convert_to_tensor(dense.kernel), [rows, -1])


def _bias(dense):
    return tf.reshape(tf.convert_to_tensor(dense.bias), [-1])


def _dense(x, denses, training, bias_add=False):
    """`x @ kernel + bias` on a 2-D `x`, for Dense layers side by side (kernels concatenated).

    A MatMul and BiasAdd, which the remapper fuses (`bias_add=True` keeps
    this form in every dtype: GELU's fusion needs it). In bfloat16 on oneDNN
    CPUs the bias rides in the matmul instead, as TF's bfloat16 BiasAdd,
    fused or not, is slow (folding it makes a training pass 1.08× faster,
    BENCHMARKS.md): `x` gets a column of ones (and zeros up to a multiple of
    32 columns, the AMX tiles' depth) and the kernel the bias as a row.
    An export prepares the kernel and bias once (`serving_weights`), a
    bfloat16 kernel transposed: oneDNN multiplies by `[columns, rows]`
    bfloat16 kernels faster (float32 ones slower; BENCHMARKS.md).
    """
    fold = not bias_add and x.dtype == tf.bfloat16 and _onednn_cpu()
    transposed = x.dtype == tf.bfloat16 and not training and preparing()
    depth = x.shape[-1]
    padding = -(depth + 1) % 32  # folded: zero columns after the ones, to a multiple of 32

    def operands():
        kernel = tf.concat([_kernel(d, depth) for d in denses], 1)
        bias = tf.concat([_bias(d) for d in denses], 0)
        kernel, bias = tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)
        if fold:
            zeros = tf.zeros([padding, kernel.shape[1]], x.dtype)
            kernel = tf.concat([kernel, bias[tf.newaxis], zeros], 0)
        kernel = tf.transpose(kernel) if transposed else kernel
        return (kernel,) if fold else (kernel, bias)

    key = ("bert_dense", *map(id, denses), x.dtype.name, fold, transposed)
    weights = operands() if training else prepared(key, operands)
    kernel = weights[0]
    if not fold:
        return tf.nn.bias_add(tf.matmul(x, kernel, transpose_b=transposed), weights[1])
    rows = tf.shape(x)[0]
    ones = [tf.ones([rows, 1], x.dtype), tf.zeros([rows, padding], x.dtype)]
    return tf.matmul(tf.concat([x, *ones], 1), kernel, transpose_b=transposed)


def _onednn_cpu():
    """Whether matmuls run on oneDNN CPU kernels (no GPU)."""
    return tf_internals.onednn_enabled() and not tf.config.list_logical_devices("GPU")


def _fused_gelu(dense, training):
    """Whether Grappler will fuse `dense`'s activation into its matmul (serving)."""
    return dense.activation is hub.exact_gelu and not training and _onednn_cpu()


def _activation(dense, x, training):
    """The feed-forward's activation on `x` (after its bias)."""
    if dense.activation is not hub.exact_gelu:
        return dense.activation(x)
    if x.dtype in (tf.bfloat16, tf.float16) and not _fused_gelu(dense, training):
        # Unfused (no oneDNN, or a GPU) 16-bit erf is slow and loses precision
        # below -2.5: as `hub.exact_gelu`, in float32, cast back.
        return fused_elementwise.exact_gelu(x)
    # Grappler's GeluExact pattern (MatMul, BiasAdd, then this chain): fused
    # into the matmul, oneDNN computes it with the matmul, bfloat16 included.
    return x * (0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF)))


def _plain_norm(norm, x):
    """Whether `norm` is Keras' plain `LayerNormalization` (last axis, centre, scale) for `x`."""
    return (
        type(norm) is keras.layers.LayerNormalization
        and norm.axis in (-1, [-1])
        and norm.center
        and norm.scale
        and not norm.rms_scaling
        and norm.compute_dtype == x.dtype.name
    )


def _feedforward_up(up, x, training):
    """The feed-forward's first projection and its activation.

    In training with exact GELU, a matmul without its bias, then the bias
    and GELU as one XLA loop each way (no bias folded into the matmul).
    """
    if training and up.activation is hub.exact_gelu:
        h = tf.matmul(x, tf.cast(_kernel(up, x.shape[-1]), x.dtype))
        return fused_elementwise.biased_exact_gelu(h, _bias(up))
    h = _dense(x, [up], training, bias_add=_fused_gelu(up, training))
    return _activation(up, h, training)


def _norm(norm, x, training):
    """A block's layer norm on `x`: fused by XLA in training if it is Keras' plain one."""
    if not (training and _plain_norm(norm, x)):
        return norm(x)
    gamma, beta = tf.convert_to_tensor(norm.gamma), tf.convert_to_tensor(norm.beta)
    return fused_elementwise.layer_norm(x, gamma, beta, norm.epsilon, fused=True)


def _multiplier(dropout, x):
    """A plain dropout's `lean_dropout.multiplier` for `x`, or None if it drops nothing."""
    seed = _seed(dropout)
    return None if seed is None else lean_dropout.multiplier(x, dropout.rate, seed)


def _tail(dense, x, dropout, residual, norm, training):
    """A post-norm block's `norm(dropout(x @ kernel + bias) + residual)`.

    In training with plain layers, one matmul without its bias, then the
    bias, dropout, residual and norm as one XLA loop each way (the bias
    folded into the matmul costs a concatenation and a slice each way).
    """
    if not (training and _plain_norm(norm, residual) and _plain_dropout(dropout)):
        out = _dropout(dropout, _dense(x, [dense], training), training)
        return _norm(norm, out + residual, training)
    out = tf.matmul(x, tf.cast(_kernel(dense, x.shape[-1]), x.dtype))
    scale = _multiplier(dropout, out)
    gamma, beta = tf.convert_to_tensor(norm.gamma), tf.convert_to_tensor(norm.beta)
    return fused_elementwise.residual_layer_norm(
        out, _bias(dense), residual, gamma, beta, norm.epsilon, scale=scale
    )


def _plain_dropout(dropout):
    """Whether `dropout` is Keras' plain `Dropout` (no noise shape) at a rate below 1."""
    plain = type(dropout) is keras.layers.Dropout and dropout.noise_shape is None
    return plain and 0.0 <= dropout.rate < 1.0


def _seed(dropout):
    """A plain dropout's next seed if it drops anything, else None."""
    return keras_internals.dropout_seed(dropout) if dropout.rate > 0.0 else None


def _dropout(dropout, x, training):
    """A block's dropout on `x`: in training, Keras' plain `Dropout` in fewer passes."""
    if not (training and _plain_dropout(dropout)):
        return dropout(x, training=training)
    return lean_dropout.dropout(x, dropout.rate, _seed(dropout))  # at rate 0: x


def _attention_probs(p, query, key, mask, training):
    """The attention weights of `query` on `key`, dropped out in training.

    `mask` says which keys each query sees. In training the scaling,
    masking, float32 softmax and dropout are one XLA loop each side of
    oneDNN's softmax, and one back (`fused_elementwise.attention_probs`).
    """
    dropout = p["attention_probs_dropout"]
    if training and _plain_dropout(dropout):
        scores = tf.matmul(query, key, transpose_b=True)
        bias = tf.where(mask, 0.0, -1e9)
        multiplier = _multiplier(dropout, scores)
        return fused_elementwise.attention_probs(scores, bias, p["scale"], multiplier)
    if p["attention_probs_dropout_rate"] > 0:
        # As Keras' explicit path: scaled query, masked Softmax layer
        # (masked scores -1e9, -3e4 in float16), dropout.
        query = query * tf.cast(p["scale"], query.dtype)
        scores = tf.matmul(query, key, transpose_b=True)
        floor = -3e4 if scores.dtype == tf.float16 else -1e9
        scores = tf.where(mask, scores, tf.cast(floor, scores.dtype))
        return _dropout(dropout, tf.nn.softmax(scores, axis=-1), training)
    # As Keras' `ops.dot_product_attention`, which MultiHeadAttention takes
    # without dropout: scaled, masked and normalised in float32.
    scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32)
    scores = scores * tf.cast(p["scale"], tf.float32)
    scores = tf.where(mask, scores, tf.float32.min * 0.7)
    return tf.cast(tf.nn.softmax(scores, axis=-1), query.dtype)


def _some_queries(p, flat, mask, outputs_at, training):
    """Queries at `outputs_at` only; keys, values and mask rows for each of them.

    A block whose other outputs are never read (a classifier's last block
    under one-token pooling) skips, for every unread token, the projections
    after its keys and values: five sixths of its matmul FLOPs with a 4×
    feed-forward. Each query attends over a copy of its own row's keys and
    values (`[n, heads, 1, head_dim]` against `[n, heads, length, head_dim]`):
    far less than the skipped work unless texts of a few tokens share long rows.
    """
    dense = p["dense"]
    heads, head_dim = p["heads"], p["key_dim"]
    batch, length = tf.shape(mask)[0], tf.shape(mask)[-1]
    kv = _dense(flat, [dense["key"], dense["value"]], training)
    kv = tf.transpose(tf.reshape(kv, [batch, length, 2 * heads, head_dim]), [0, 2, 1, 3])
    rows = outputs_at // length
    key, value = tf.split(tf.gather(kv, rows), 2, axis=1)
    query = _dense(tf.gather(flat, outputs_at), [dense["query"]], training)
    query = tf.reshape(query, [-1, heads, 1, head_dim])
    mask = tf.gather(tf.reshape(mask, [-1, length]), outputs_at)[:, None, None, :]
    return query, key, value, mask


def _is_linear(layer):
    activation = getattr(layer, "activation", None)
    return activation is None or activation is keras.activations.linear


def _computable(layer):
    """Whether `encoder_layer` computes what `layer` does (else keras-hub's own call)."""
    if type(layer).call is not keras_hub.layers.TransformerEncoder.call:
        return False  # a subclass with its own call
    p = hub.bert_layer_parts(layer)
    attention = p["attention"]
    mha = keras.layers.MultiHeadAttention
    if type(attention).call is not mha.call or (
        type(attention)._compute_attention is not mha._compute_attention
    ):
        return False
    if getattr(attention, "_use_gate", False) or getattr(attention, "_output_shape", None):
        return False
    if getattr(attention, "_sliding_window", None) is not None:
        return False
    if tuple(getattr(attention, "_attention_axes", None) or (1,)) != (1,):
        return False
    hidden = p["dense"]["query"].kernel.shape[0]
    if p["heads"] * p["key_dim"] != hidden or p["value_dim"] != p["key_dim"]:
        return False
    if layer.activity_regularizer is not None:
        return False
    for name, dense in p["dense"].items():
        if getattr(dense, "bias", None) is None or dense.quantization_mode:
            return False
        if name != "intermediate" and not _is_linear(dense):
            return False
    return True


class LeanBert:
    """keras-hub BERT blocks (`TransformerEncoder`) computed as `encoder_layer` does."""

    @staticmethod
    def supports(backbone):
        """Whether `backbone`'s blocks can run through `encoder_layer`: allowed and exact.

        `backbone.fast_forward: off` opts out; blocks that are not plain
        keras-hub `TransformerEncoder`s with plain multi-head attention
        (quantized, without biases, gated, other head sizes, subclasses)
        keep keras-hub's layers.
        """
        if getattr(backbone, "_tftransfer_fast_forward", True) is False:
            return False
        return all(_computable(layer) for layer in hub.bert_layers(backbone)["transformer_layers"])

    @staticmethod
    def encoder_layer(layer, x, attention_mask, training=False, outputs_at=None):
        """keras-hub's `layer(x, attention_mask=attention_mask)` in fewer, fusable ops.

        Args:
            layer: a keras-hub `TransformerEncoder` (a BERT block).
            x: `[batch, length, hidden]` inputs in the compute dtype.
            attention_mask: bool `[batch, length, length]`: which keys each
                query sees.
            training: whether dropout applies.
            outputs_at: int `[n]` positions in the flattened `[batch * length]`
                tokens whose outputs alone are wanted (e.g. each text's
                [CLS] in a last block): the block then computes keys and
                values for every token but queries, attention and
                feed-forward for these only, and returns `[n, hidden]`.
        """
        p = hub.bert_layer_parts(layer)
        dense = p["dense"]
        batch, length, hidden = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        heads, head_dim = p["heads"], p["key_dim"]
        flat = tf.reshape(x, [-1, hidden])

        residual = flat
        if p["normalize_first"]:
            flat = _norm(p["attention_norm"], flat, training)
        mask = attention_mask[:, None, :, :]
        if outputs_at is None:
            qkv = _dense(flat, [dense[n] for n in ("query", "key", "value")], training)
            # -> 3 x [batch, heads, length, head_dim]; a split, whose gradient
            # is a concat (indexing's is a StridedSliceGrad per part: slower).
            qkv = tf.reshape(qkv, [batch, length, 3 * heads, head_dim])
            query, key, value = tf.split(tf.transpose(qkv, [0, 2, 1, 3]), 3, axis=1)
        else:
            query, key, value, mask = _some_queries(p, flat, mask, outputs_at, training)
            residual = tf.gather(residual, outputs_at)
        probs = _attention_probs(p, query, key, mask, training)
        context = tf.matmul(probs, value)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, hidden])
        if p["normalize_first"]:
            out = _dense(context, [dense["output"]], training)
            flat = _dropout(p["attention_dropout"], out, training) + residual
        else:
            tail = (p["attention_dropout"], residual, p["attention_norm"], training)
            flat = _tail(dense["output"], context, *tail)

        residual = flat
        if p["normalize_first"]:
            flat = _norm(p["feedforward_norm"], flat, training)
        h = _feedforward_up(dense["intermediate"], flat, training)
        down = dense["feedforward_output"]
        if p["normalize_first"]:
            flat = _dropout(p["feedforward_dropout"], _dense(h, [down], training), training)
            flat = flat + residual
        else:
            tail = (p["feedforward_dropout"], residual, p["feedforward_norm"], training)
            flat = _tail(down, h, *tail)
        return flat if outputs_at is not None else tf.reshape(flat, [batch, length, hidden])
