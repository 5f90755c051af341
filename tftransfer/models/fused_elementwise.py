"""Element-wise chains of transformer blocks, fused by XLA in training, gradients written out.

On CPU TensorFlow runs each element-wise op as its own pass over memory:
the RMS norm, the rotary embedding, the SiLU-gated product and the
attention mask and softmax of a SmolLM2 layer (a BERT block's biases,
exact GELU, dropout, residual sums and layer norms too) are 5-20 passes
each way over its activations, most
of a bfloat16 training step's time outside the matmuls once oneDNN
multiplies on the AMX units (BENCHMARKS.md, "Fine-tuning speed against HF
`Trainer`"). Fused (`fused=True`, or the functions only training calls:
`biased_exact_gelu`, `residual_layer_norm`, `attention_probs`) each chain
and its gradient are compiled by XLA into a loop or two; the matmuls
between them stay TensorFlow's (oneDNN's: XLA's CPU backend multiplies 5x
slower in bfloat16), and so
does oneDNN's softmax, faster than XLA's. Training asks for `fused`;
evaluation, exports and generation run the plain ops (TF Serving runs
XLA-compiled functions only with `--xla_cpu_compilation_enabled=true`).

The gradients are written out so that each backward chain is one
function: it recomputes from the saved inputs what TF's derivative would
keep (less memory too). The arithmetic is TensorFlow's derivative
(tests/test_fused_elementwise.py compares the two).

Example:

>>> import tensorflow as tf
>>> from tftransfer.models.fused_elementwise import silu_gated
>>> gate, up = tf.constant([[0.0, 1.0]]), tf.constant([[2.0, 3.0]])
>>> [round(float(v), 4) for v in silu_gated(gate, up)[0]]
[0.0, 2.1932]
"""

import tensorflow as tf


def _rms(x, epsilon):
    x32 = tf.cast(x, tf.float32)
    rms = tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + epsilon)
    normed = x32 * rms
    return normed, rms


def _rms_forward(x, weight, epsilon):
    normed, _ = _rms(x, epsilon)
    return tf.cast(normed * weight, x.dtype)


def _rms_backward(x, weight, epsilon, upstream):
    normed, rms = _rms(x, epsilon)
    dy = tf.cast(upstream, tf.float32)
    d_normed = dy * weight
    d_x = rms * (d_normed - normed * tf.reduce_mean(d_normed * normed, axis=-1, keepdims=True))
    d_weight = tf.reduce_sum(tf.reshape(dy * normed, [-1, weight.shape[-1]]), axis=0)
    return tf.cast(d_x, x.dtype), d_weight


def _silu_forward(gate, up):
    return up * tf.cast(tf.nn.silu(tf.cast(gate, tf.float32)), gate.dtype)


def _silu_backward(gate, up, upstream):
    g = tf.cast(gate, tf.float32)
    s = tf.sigmoid(g)
    act = tf.cast(g * s, gate.dtype)
    d_act = tf.cast(upstream * up, tf.float32)
    return tf.cast(d_act * (s * (1.0 + g * (1.0 - s))), gate.dtype), upstream * act


def _rotate_forward(x, cos, signed_sin):
    return x * cos + tf.roll(x, x.shape[-1] // 2, axis=-1) * signed_sin


def _rotate_backward(cos, signed_sin, upstream):
    # roll by half the last axis is its own inverse
    return upstream * cos + tf.roll(upstream * signed_sin, upstream.shape[-1] // 2, axis=-1)


_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def _gelu_forward(x):
    x32 = tf.cast(x, tf.float32)
    return tf.cast(x32 * (0.5 * (1.0 + tf.math.erf(x32 * _SQRT_HALF))), x.dtype)


def _gelu_derivative(x32, upstream):
    cdf = 0.5 * (1.0 + tf.math.erf(x32 * _SQRT_HALF))
    pdf = tf.exp(-0.5 * tf.square(x32)) * _INV_SQRT_2PI
    return tf.cast(upstream, tf.float32) * (cdf + x32 * pdf)


def _gelu_backward(x, upstream):
    return tf.cast(_gelu_derivative(tf.cast(x, tf.float32), upstream), x.dtype)


def _biased_gelu_forward(x, bias):
    return tf.cast(_gelu_forward(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32)), x.dtype)


def _biased_gelu_backward(x, bias, upstream):
    d_x = _gelu_derivative(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32), upstream)
    return tf.cast(d_x, x.dtype), tf.cast(_column_sums(d_x), bias.dtype)


def _column_sums(x):
    return tf.reduce_sum(tf.reshape(x, [-1, x.shape[-1]]), axis=0)


def _moments(x32):
    mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
    return mean, tf.reduce_mean(tf.square(x32 - mean), axis=-1, keepdims=True)


def _layer_norm_forward(x, gamma, beta, epsilon):
    x32 = tf.cast(x, tf.float32)
    mean, variance = _moments(x32)
    inv = tf.math.rsqrt(variance + epsilon) * gamma
    return tf.cast(x32 * inv + (beta - mean * inv), x.dtype)  # Keras' order


def _layer_norm_gradients(x32, gamma, epsilon, upstream):
    """The float32 gradients of a layer norm of `x32`: input, scale, offset."""
    mean, variance = _moments(x32)
    rstd = tf.math.rsqrt(variance + epsilon)
    normed = (x32 - mean) * rstd
    dy = tf.cast(upstream, tf.float32)
    d_normed = dy * gamma
    d_x = rstd * (
        d_normed
        - tf.reduce_mean(d_normed, axis=-1, keepdims=True)
        - normed * tf.reduce_mean(d_normed * normed, axis=-1, keepdims=True)
    )
    return d_x, _column_sums(dy * normed), _column_sums(dy)


def _layer_norm_backward(x, gamma, beta, epsilon, upstream):
    del beta  # an offset
    d_x, d_gamma, d_beta = _layer_norm_gradients(tf.cast(x, tf.float32), gamma, epsilon, upstream)
    return tf.cast(d_x, x.dtype), d_gamma, d_beta


def _times(x32, multiplier):
    """`x32 * multiplier` (a dropout's, any float dtype; None: no dropout) in float32."""
    return x32 if multiplier is None else x32 * tf.cast(multiplier, tf.float32)


def _summed(x, bias, residual, scale):
    """`(x + bias) * scale + residual` in float32 (`scale`: a dropout's, or None)."""
    h = tf.cast(x, tf.float32) + tf.cast(bias, tf.float32)
    h = _times(h, scale)
    return h + tf.cast(residual, tf.float32)


def _residual_norm_forward(x, bias, residual, gamma, beta, scale, epsilon):
    normed = _layer_norm_forward(_summed(x, bias, residual, scale), gamma, beta, epsilon)
    return tf.cast(normed, x.dtype)


def _residual_norm_backward(x, bias, residual, gamma, beta, scale, epsilon, upstream):
    del beta  # an offset
    h = _summed(x, bias, residual, scale)
    d_h, d_gamma, d_beta = _layer_norm_gradients(h, gamma, epsilon, upstream)
    d_x = _times(d_h, scale)
    d_residual = tf.cast(d_h, residual.dtype)
    d_bias = tf.cast(_column_sums(d_x), bias.dtype)
    return tf.cast(d_x, x.dtype), d_bias, d_residual, d_gamma, d_beta


def _masked_logits(scores, bias):
    return tf.cast(scores, tf.float32) + bias


def _scaled_logits(scores, bias, scale):
    return tf.cast(scores, tf.float32) * scale + bias


def _dropped(weights, multiplier, dtype):
    return tf.cast(_times(weights, multiplier), dtype)


def _attention_backward(weights, multiplier, scale, upstream):
    dy = _times(tf.cast(upstream, tf.float32), multiplier)
    d_scores = (dy - tf.reduce_sum(dy * weights, axis=-1, keepdims=True)) * weights * scale
    return tf.cast(d_scores, upstream.dtype)


def _xla(fn):
    return tf.function(fn, jit_compile=True, autograph=False)


_fused_rms = tuple(map(_xla, (_rms_forward, _rms_backward)))
_fused_silu = tuple(map(_xla, (_silu_forward, _silu_backward)))
_fused_rotate = tuple(map(_xla, (_rotate_forward, _rotate_backward)))
_fused_gelu = tuple(map(_xla, (_gelu_forward, _gelu_backward)))
_fused_layer_norm = tuple(map(_xla, (_layer_norm_forward, _layer_norm_backward)))
_fused_biased_gelu = tuple(map(_xla, (_biased_gelu_forward, _biased_gelu_backward)))
_fused_residual_norm = tuple(map(_xla, (_residual_norm_forward, _residual_norm_backward)))
_fused_attention = tuple(map(_xla, (_scaled_logits, _dropped, _attention_backward)))


def _with_fused_gradient(pair, inputs, constants=()):
    """`forward(*inputs, *constants)`, its gradient `backward(*inputs, *constants, dy)`."""
    forward, backward = pair

    @tf.custom_gradient
    def run(*inputs):
        return forward(*inputs, *constants), lambda dy: backward(*inputs, *constants, dy)

    return run(*inputs)


def scaled_rms(x, weight, epsilon, fused=False):
    """`x * rsqrt(mean(x^2) + epsilon) * weight`, float32 statistics, `x`'s dtype out.

    keras-hub's LlamaLayerNorm.

    Args:
        x: activations `[..., hidden]`, any float dtype.
        weight: the float32 scale `[hidden]`.
        epsilon: a Python float.
        fused: compile both directions with XLA (training).
    """
    if not fused:
        return _rms_forward(x, weight, epsilon)
    return _with_fused_gradient(_fused_rms, (x, weight), (epsilon,))


def layer_norm(x, gamma, beta, epsilon, fused=False):
    """Keras' `LayerNormalization` over the last axis: float32 statistics, `x`'s dtype out.

    Args:
        x: activations `[..., hidden]`, any float dtype.
        gamma, beta: the float32 scale and offset `[hidden]`.
        epsilon: a Python float.
        fused: compile both directions with XLA (training).
    """
    if not fused:
        return _layer_norm_forward(x, gamma, beta, epsilon)
    return _with_fused_gradient(_fused_layer_norm, (x, gamma, beta), (epsilon,))


def silu_gated(gate, up, fused=False):
    """`silu(gate) * up` in `gate`'s dtype, the SiLU in float32 (as keras-hub's Llama)."""
    if not fused:
        return _silu_forward(gate, up)
    return _with_fused_gradient(_fused_silu, (gate, up))


def exact_gelu(x, fused=False):
    """`x * 0.5 * (1 + erf(x / sqrt(2)))` in float32, `x`'s dtype out (BERT's GELU)."""
    if not fused:
        return _gelu_forward(x)
    return _with_fused_gradient(_fused_gelu, (x,))


def biased_exact_gelu(x, bias):
    """`exact_gelu(x + bias)` in float32, `x`'s dtype out: fused both ways (training).

    A feed-forward's bias and activation in one loop each way, the bias's
    gradient summed in the same loop (a matmul then has no bias to add).
    `bias` may be float32 or, read by Keras' autocasting, the compute dtype;
    its gradient comes in its dtype.
    """
    return _with_fused_gradient(_fused_biased_gelu, (x, bias))


def residual_layer_norm(x, bias, residual, gamma, beta, epsilon, scale=None):
    """`layer_norm((x + bias) * scale + residual)`: a post-norm block's tail, fused (training).

    The output projection's bias, its dropout (`scale`: the mask times
    `1 / (1 - rate)`, `lean_dropout.multiplier`; None without dropout), the
    residual sum and the layer norm in one loop each way, in float32 inside
    (keras-hub rounds the sum to the compute dtype at each step), `x`'s dtype out.

    Args:
        x: the projection's output without its bias, `[rows, hidden]`.
        bias: `[hidden]`, float32 or (autocast) `x`'s dtype; its gradient in it.
        gamma, beta: float32 `[hidden]`.
        residual: the block's input, `x`'s dtype.
        epsilon: a Python float.
        scale: the dropout's multiplier, `x`'s shape, or None.
    """
    return _with_fused_gradient(
        _fused_residual_norm, (x, bias, residual, gamma, beta), (scale, epsilon)
    )


def rotate(x, cos, signed_sin, fused=False):
    """`x * cos + roll(x, half) * signed_sin` over the last axis: a rotary embedding.

    `cos` and `signed_sin` are constants (positions), without a gradient.
    """
    if not fused:
        return _rotate_forward(x, cos, signed_sin)
    forward, backward = _fused_rotate

    @tf.custom_gradient
    def run(x):  # linear: the gradient does not need x (nor keep it alive)
        return forward(x, cos, signed_sin), lambda dy: backward(cos, signed_sin, dy)

    return run(x)


def masked_softmax(scores, bias, fused=False):
    """`softmax(scores + bias)` in float32, `scores`' dtype out (keras-hub's attention).

    `bias` is a float32 constant (the mask). Fused, oneDNN's softmax stays
    (XLA's is slower here) between XLA's cast-and-add and the gradient.
    """
    if not fused:
        return tf.cast(tf.nn.softmax(_masked_logits(scores, bias)), scores.dtype)
    return attention_probs(scores, bias, 1.0)


def attention_probs(scores, bias, scale, multiplier=None):
    """`dropout(softmax(scores * scale + bias))` for training: fused around oneDNN's softmax.

    The scaling, mask and float32 cast before the softmax are one XLA loop,
    the dropout and cast after it another, and the gradient (dropout and
    softmax) a third. keras-hub scales the query before its matmul and
    masks, normalises and drops out in the compute dtype; this computes in
    float32 between the two matmuls, `scores`' dtype out.

    Args:
        scores: `query @ key^T`, unscaled, `[batch, heads, queries, keys]`.
        bias: float32 additive mask (0 or a large negative), broadcastable to `scores`.
        scale: a Python float (`1 / sqrt(head size)`).
        multiplier: the dropout's `lean_dropout.multiplier` in `scores`' shape
            and dtype, or None (no dropout).
    """
    logits, dropped, backward = _fused_attention

    @tf.custom_gradient
    def run(scores):
        weights = tf.nn.softmax(logits(scores, bias, scale))
        probs = dropped(weights, multiplier, scores.dtype)
        return probs, lambda dy: backward(weights, multiplier, scale, dy)

    return run(scores)
