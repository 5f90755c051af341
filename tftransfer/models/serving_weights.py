"""Weights a serving graph reads, prepared once at export instead of on every call.

The lean forward passes (`LeanBert`, `LeanLlama`) derive what their matmuls
take from the stored float32 variables on every call: under mixed precision
each kernel cast to bfloat16, and `LeanBert`'s query, key and value kernels
concatenated, with bias rows appended. In training that is part of the step
(the gradient flows through it to the variables); in an export it is the same
work on every request, most of a bfloat16 question-answering request's time
(BENCHMARKS.md). While an export traces its signatures inside
`ServingWeights().scope()`, `prepared(key, build)` runs `build` once, eagerly,
on the weights as they are then, and the graph reads the result from a
variable the SavedModel stores instead.

Only graphs traced inside the scope read these copies: a model trained
further after an export cannot serve stale weights, its next export prepares
new ones.

Example:

>>> import tensorflow as tf
>>> from tftransfer.models.serving_weights import ServingWeights, prepared
>>> kernel = tf.Variable(tf.ones([2, 3]))
>>> as_bf16 = lambda: tf.cast(kernel, tf.bfloat16)
>>> weights = ServingWeights()
>>> with weights.scope():
...     serve = tf.function(lambda x: x @ prepared(("kernel", "bfloat16"), as_bf16))
...     y = serve(tf.ones([1, 2], tf.bfloat16))
>>> [v.dtype.name for v in weights.variables]
['bfloat16']
"""

import contextlib
import threading

import keras
import tensorflow as tf

_active = threading.local()


def prepared(key, build):
    """`build()`'s weights: computed in the graph, or read from a variable inside a scope.

    Args:
        key: identifies what `build` computes (the source layers and the
            form, e.g. `("qkv", id(query), id(key), id(value), "bfloat16")`):
            signatures that ask for the same key share one variable.
        build: computes the weights (a tensor or a tuple of them) from the
            model's variables only, no graph inputs: it runs eagerly inside
            a scope.
    """
    weights = getattr(_active, "weights", None)
    return build() if weights is None else weights.read(key, build)


class ServingFunction:
    """`fn` traced at its first call with prepared weights, for a model that trains no more.

    What `predict --model_dir` and `generate --model_dir` run on a restored
    checkpoint: the same graph an export would hold, without writing one.

    Args:
        fn: a task's serving function.
        input_signature: its `tf.TensorSpec`s, in order.
    """

    def __init__(self, fn, input_signature):
        self._function = tf.function(fn, input_signature=input_signature, autograph=False)
        self._weights = ServingWeights()  # the traced graph holds its variables weakly
        self._traced = None

    def __call__(self, *args):
        if self._traced is None:
            with self._weights.scope():
                self._traced = self._function.get_concrete_function()
        return self._traced(*args)


def captured_variables(concrete_functions):
    """The variables the functions' graphs read, each once (what a SavedModel must store).

    Not `ConcreteFunction.variables` alone: it also lists the variables
    tracing read eagerly, such as the sources of prepared weights.
    """
    captured = {id(t) for fn in concrete_functions for t in fn.captured_inputs}
    read = {id(v): v for fn in concrete_functions for v in fn.variables}
    return [v for v in read.values() if id(v.handle) in captured]


def preparing():
    """Whether the graph being traced reads prepared weights (inside `ServingWeights.scope()`).

    Layouts that pay only when made once (a transposed kernel) are chosen
    on this; they would cost a copy per step in training.
    """
    return getattr(_active, "weights", None) is not None


def in_dtype(layer, name, dtype, shape=tf.identity, transposed=False):
    """`shape(layer.<name>)` cast to `dtype`: prepared once in an export, if anything changes.

    Args:
        layer: the Keras layer that holds the weight.
        name: the attribute that reads it (`kernel`, `embeddings`; a LoRA
            layer's merged kernel too).
        dtype: the compute dtype.
        shape: a reshape to apply first.
        transposed: the 2-D result transposed (for `tf.matmul(...,
            transpose_b=True)`; only when `preparing()`).
    """
    dtype = tf.as_dtype(dtype)

    def build():
        weight = tf.cast(shape(tf.convert_to_tensor(getattr(layer, name))), dtype)
        return tf.transpose(weight) if transposed else weight

    if tf.as_dtype(getattr(layer, name).dtype) == dtype and not transposed:
        return build()  # nothing to prepare: a float32 export reads the variable itself
    return prepared((id(layer), name, dtype.name, transposed), build)


def embedded(layer, token_ids, dtype):
    """`layer(token_ids)` for a Keras `Embedding`, looked up in its table in `dtype`.

    Keras gathers float32 rows and casts them, which Grappler reorders into
    a cast of the whole table on every call (most of a bfloat16 one-text
    request's time; 28M values at every decoded token for SmolLM2); an export
    prepares the cast table once (and a decoder shares it with its tied
    logits). Quantized and other layers run as they are.
    """
    if layer.quantization_mode or not isinstance(layer, keras.layers.Embedding):
        return layer(token_ids)
    return tf.gather(in_dtype(layer, "embeddings", dtype), token_ids)


class ServingWeights:
    """The variables `prepared` made inside `scope()`, for the SavedModel to store."""

    def __init__(self):
        self._variables = {}

    @property
    def variables(self):
        return tf.nest.flatten(list(self._variables.values()))

    @contextlib.contextmanager
    def scope(self):
        """Graphs traced inside read prepared weights (one scope at a time per thread)."""
        if getattr(_active, "weights", None) is not None:
            raise RuntimeError("ServingWeights scopes do not nest")
        _active.weights = self
        try:
            yield self
        finally:
            _active.weights = None

    def read(self, key, build):
        if key not in self._variables:
            # Out of the graph being traced: the value of the weights now.
            with tf.init_scope():
                self._variables[key] = tf.nest.map_structure(
                    lambda t: tf.Variable(t, trainable=False, name="serving_weight"), build()
                )
        return tf.nest.map_structure(tf.convert_to_tensor, self._variables[key])
