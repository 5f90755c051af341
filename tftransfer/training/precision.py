"""Mixed precision: Keras dtype policies, float32 logits and loss, float16 loss scaling.

`runtime.mixed_precision` picks a Keras policy while the model is built
(`auto`, the default, picks bfloat16 where the hardware has bf16 units:
`auto_precision`):
variables stay float32 and layers compute in bfloat16 or float16. The
trainer casts the model's outputs to float32 before the loss, so logits,
softmax and the loss are float32 whatever the policy (the head's logits
layer is float32 too). bfloat16 has float32's exponent range and needs no
loss scaling: it is the TPU's native type and runs on CPUs with
AVX512_BF16/AMX and on Ampere or newer GPUs. float16 (GPUs) underflows
small gradients, so its loss is scaled by `DynamicLossScale`.

Example:

>>> import keras
>>> from tftransfer.training import precision
>>> precision.policy_name("bfloat16")
'mixed_bfloat16'
>>> with precision.dtype_policy("mixed_bfloat16"):
...     layer = keras.layers.Dense(2)
>>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
('bfloat16', 'float32', 'float32')
"""

import contextlib

import keras
import tensorflow as tf

from tftransfer.training import auto_precision

#: accepted `runtime.mixed_precision` values and the Keras policy each means.
POLICIES = {
    "": None,
    "float32": None,
    "bfloat16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
    "mixed_float16": "mixed_float16",
}


def choices():
    """The accepted `runtime.mixed_precision` and `export.mixed_precision` values."""
    return (auto_precision.AUTO,) + tuple(POLICIES)


def policy_name(value):
    """The Keras policy for a `runtime.mixed_precision` value (None = float32)."""
    return POLICIES[value]


def compute_dtype(value):
    """`float32`, `bfloat16` or `float16`: what layers compute in under `value`."""
    policy = POLICIES[value]
    return policy.replace("mixed_", "") if policy else "float32"


def resolve(value, strategy=None):
    """`(value, note)`: `auto` decided for `strategy`'s devices; the note says what and why.

    >>> resolve("bfloat16")
    ('bfloat16', 'bfloat16 (set)')
    """
    value, why = auto_precision.resolve(value, strategy, choices())
    return value, f"{compute_dtype(value)} ({why})"


@contextlib.contextmanager
def dtype_policy(name):
    """Builds layers under Keras policy `name` (None: as they are), then restores the global one."""
    if name is None:
        yield
        return
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_outputs(outputs):
    """The model's floating outputs as float32 (the loss is computed in float32)."""
    return tf.nest.map_structure(
        lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating and t.dtype != tf.float32 else t,
        outputs,
    )


def reads_compute_dtype(loss_fn):
    """Marks `loss_fn` as taking the model's outputs in the compute dtype.

    The training step casts a mixed-precision model's outputs to float32
    before the loss; a loss marked so skips that cast and reads them in
    float32 itself, a piece at a time. For a language model's logits
    (2,048 tokens x 49k words) the whole-tensor cast and its gradient are
    two 400 MB passes a step.

    >>> loss = reads_compute_dtype(lambda labels, outputs: outputs)
    >>> loss.reads_compute_dtype
    True
    """
    loss_fn.reads_compute_dtype = True
    return loss_fn


class DynamicLossScale(tf.Module):
    """float16 loss scaling: scale up, halve on overflow and skip the step, double when stable.

    Keras' `LossScaleOptimizer` cannot be used here: it unscales inside
    `apply`, after this loop's cross-replica sum and global-norm clipping
    (clipping scaled gradients would clip nearly everything), and its
    optimizer wrapper changes the checkpoint layout of every run. The
    schedule is Keras' and TF's: start at 2**15, double after 2000 finite
    steps, halve on a non-finite gradient.

    Args:
        initial_scale: the starting scale.
        growth_steps: finite steps before the scale doubles.
    """

    def __init__(self, initial_scale=2.0**15, growth_steps=2000):
        super().__init__(name="loss_scale")
        self.growth_steps = growth_steps
        # Updated identically on every replica from all-reduced gradients.
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.scale = tf.Variable(initial_scale, trainable=False, aggregation=aggregation)
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, aggregation=aggregation)

    def update(self, finite):
        """Adjusts the scale after a step whose reduced gradients were `finite` or not."""
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_steps)
        new_scale = tf.where(
            finite, tf.where(grow, self.scale * 2.0, self.scale), tf.maximum(self.scale / 2.0, 1.0)
        )
        new_good = tf.where(tf.logical_and(finite, tf.logical_not(grow)), self.good_steps + 1, 0)
        return tf.group(self.scale.assign(new_scale), self.good_steps.assign(new_good))
