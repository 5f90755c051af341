"""Keras' private internals: optimizer slots and hooks, recursive layer listing, LoRA merging.

Each was read from Keras 3.15 (TensorFlow backend); `compat.check()` probes
each one's presence and the behaviour tftransfer relies on.
"""

import keras
import numpy as np
import tensorflow as tf

from tftransfer.compat.base import incompatible, require


# Keras 3.15: the fused Adam update (`PreReducedAdamW.update_step`) writes
# the slots itself; Keras has no public accessor for them.
def adam_slots(optimizer, variable):
    """`(momentum, velocity)` of `variable` in a Keras Adam(W) optimizer."""
    index = variable_index(optimizer, variable)
    momentums = require(optimizer, "_momentums", "keras")
    velocities = require(optimizer, "_velocities", "keras")
    return momentums[index], velocities[index]


# Keras 3.15: per-variable learning rates (layer-wise decay) are kept by the
# optimizer's own variable index; Keras has one rate for all variables.
def variable_index(optimizer, variable):
    """The optimizer's index of `variable` (the position of its slots)."""
    return require(optimizer, "_get_variable_index", "keras")(variable)


# Keras 3.15: the variables in index order, as `build` received them.
def optimizer_variables(optimizer):
    """The trainable variables a built optimizer updates, in its index order."""
    return list(require(optimizer, "_trainable_variables", "keras"))


# Keras 3.15: `exclude_from_weight_decay`'s decision for one variable, which
# the per-layer weight decay must repeat.
def uses_weight_decay(optimizer, variable):
    """Whether the optimizer's weight decay applies to `variable`."""
    return require(optimizer, "_use_weight_decay", "keras")(variable)


# Keras 3.15 (TensorFlow backend): the strategy the optimizer was made under,
# whose `extended.update` applies a change to every replica's copy.
def distribution_strategy(optimizer):
    """The `tf.distribute.Strategy` the optimizer updates its variables under."""
    return require(optimizer, "_distribution_strategy", "keras")


#: the Keras optimizer method that sums gradients across replicas; the
#: trainer sums (and clips) itself, so its optimizer overrides this.
KERAS_ALL_REDUCE = "_all_reduce_sum_gradients"
#: the Keras optimizer method `apply` decays the weights through, with the
#: variables it updates; layer-wise rates override it to scale each decay.
KERAS_WEIGHT_DECAY = "_apply_weight_decay"


# Keras 3.15: overriding a method Keras stopped calling would silently sum
# gradients twice or decay every layer at the one rate.
def check_optimizer_hooks():
    """Fails if Keras' optimizers lack `KERAS_ALL_REDUCE` or `KERAS_WEIGHT_DECAY`.

    Cheap enough for every optimizer built; `compat.check()` also sees that
    `apply` calls them, with what.
    """
    for name in (KERAS_ALL_REDUCE, KERAS_WEIGHT_DECAY):
        require(keras.optimizers.AdamW, name, "keras")


def keras_weight_decay(optimizer, variables):
    """Keras' own decoupled weight decay of `variables` (`optimizer` may be `super()`)."""
    require(optimizer, KERAS_WEIGHT_DECAY, "keras", owner="AdamW")(variables)


# Keras 3.15: Keras lists nested layers only through this private method.
def flatten_layers(model):
    """Every layer nested in `model` (Keras has no public recursive listing)."""
    return list(require(model, "_flatten_layers", "keras")(include_self=False))


# Keras 3.15: a Dropout layer draws its seed from `seed_generator`, then the
# TF backend folds it into int32 (`_cast_seed`) for the stateless ops.
def dropout_seed(layer):
    """The next int32 `[2]` seed of a Keras `Dropout` layer, as its own call draws it."""
    seed = require(layer, "seed_generator", "keras").next()
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return seed


#: what Keras' `enable_lora` adds to a Dense/EinsumDense layer.
LORA_WEIGHTS = ("lora_kernel_a", "lora_kernel_b")


# Keras 3.15: removing the adapters needs the layer's own kernel variable,
# its variable tracker and its list of trainable variables.
def merge_lora(layer):
    """Folds a layer's LoRA adapters into its kernel and removes them.

    Keras merges adapters only into saved weight files (`save_own_variables`);
    an in-memory model keeps computing `kernel + A @ B` and keeps the adapter
    variables, which a SavedModel would then carry. After this the layer is
    the plain layer it was before `enable_lora`, with the merged kernel.
    """
    kernel = require(layer, "_kernel", "keras")
    merged = keras.ops.convert_to_tensor(layer.kernel)  # kernel + alpha / rank * A @ B
    kernel.assign(keras.ops.cast(merged, kernel.dtype))
    adapters = {id(require(layer, name, "keras")) for name in LORA_WEIGHTS}
    tracker = require(layer, "_tracker", "keras")
    tracker.unlock()
    layer._trainable_variables[:] = [
        v for v in require(layer, "_trainable_variables", "keras") if id(v) not in adapters
    ]
    for name in LORA_WEIGHTS:
        object.__delattr__(layer, name)
    tracker.lock()
    layer.lora_enabled = False
    kernel.trainable = True


def check_merge_lora():
    """Merges a tiny Dense layer's adapters; fails unless its 2 own weights remain."""
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.enable_lora(1)
    merge_lora(dense)
    if len(dense.weights) != 2:
        raise incompatible("keras", "`Dense.enable_lora`", f"left {len(dense.weights)} weights")


def check_dropout_seed():
    """`dropout_seed` draws the seed a Keras `Dropout` layer's own call would draw."""
    x = tf.ones([4, 64])
    ours, keras_own = keras.layers.Dropout(0.5, seed=7), keras.layers.Dropout(0.5, seed=7)
    want = keras_own(x, training=True)
    got = tf.nn.experimental.stateless_dropout(x, 0.5, seed=dropout_seed(ours))
    if not np.array_equal(np.asarray(got), np.asarray(want)):
        raise incompatible("keras", "`Dropout.seed_generator`", "no longer gives its call's seed")


def check_optimizer():
    """One AdamW step on two tiny variables: its bookkeeping, both hooks as `apply` uses them."""
    calls = {}

    def all_reduce(self, grads_and_vars):
        calls[KERAS_ALL_REDUCE] = list(grads_and_vars)
        return getattr(super(probe, self), KERAS_ALL_REDUCE)(calls[KERAS_ALL_REDUCE])

    def decay(self, variables):
        calls[KERAS_WEIGHT_DECAY] = list(variables)
        keras_weight_decay(super(probe, self), variables)

    hooks = {KERAS_ALL_REDUCE: all_reduce, KERAS_WEIGHT_DECAY: decay}
    probe = type("HookProbe", (keras.optimizers.AdamW,), hooks)
    kernel = keras.Variable(np.full((2, 2), 2.0, "float32"), name="kernel")
    bias = keras.Variable(np.ones(2, "float32"), name="bias")
    optimizer = probe(learning_rate=0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.build([kernel, bias])
    _check_bookkeeping(optimizer, kernel, bias)
    optimizer.apply([keras.ops.zeros((2, 2)), keras.ops.zeros(2)], [kernel, bias])
    for name in hooks:
        if len(calls.get(name, ())) != 2:
            raise incompatible(
                "keras", f"`AdamW.{name}`", "is not called by `apply` on each variable"
            )
    # A zero gradient moves nothing through Adam: the kernel moved by its decay alone.
    if not np.allclose(kernel.numpy(), 2.0 * (1 - 0.1 * 0.5)):
        raise incompatible(
            "keras", f"`AdamW.{KERAS_WEIGHT_DECAY}`", "no longer does w -= lr * wd * w"
        )


def _check_bookkeeping(optimizer, kernel, bias):
    variables = optimizer_variables(optimizer)
    momentum, velocity = adam_slots(optimizer, kernel)
    right = {
        "_trainable_variables": [id(v) for v in variables] == [id(kernel), id(bias)],
        "_get_variable_index": [variable_index(optimizer, v) for v in variables] == [0, 1],
        "_use_weight_decay": [uses_weight_decay(optimizer, v) for v in variables] == [True, False],
        "_momentums` / `_velocities": momentum.shape == velocity.shape == kernel.shape,
        "_distribution_strategy": hasattr(distribution_strategy(optimizer), "extended"),
    }
    for name, ok in right.items():
        if not ok:
            raise incompatible("keras", f"`AdamW.{name}`", "no longer means what it did")
