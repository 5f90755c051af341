"""One distributed optimizer step, and a loop of them in one `tf.function`.

`TrainStep` holds what a step needs (model, loss, optimizer, strategy, the
variables it trains) and builds the two functions the trainer calls: one
step, and `count` steps in one call (`trainer.steps_per_execution`). Under
float16 a dynamic loss scale skips steps whose gradients overflowed.

Example:

>>> import keras, tensorflow as tf
>>> from tftransfer.training.train_step import TrainStep
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> optimizer = keras.optimizers.SGD(0.1)
>>> step = TrainStep(model, lambda y, p: tf.reduce_mean((y - p) ** 2, axis=-1),
...                  optimizer, tf.distribute.get_strategy(), model.trainable_variables,
...                  global_batch_size=2, clipnorm=1.0)
>>> one, several = step.functions()
>>> loss = one(tf.ones((2, 2)), tf.zeros((2, 1)))
>>> int(optimizer.iterations.numpy())
1
"""

import tensorflow as tf

from tftransfer.training import precision


def use_xla(config, strategy):
    """Whether the step's forward and backward pass are compiled with XLA.

    `config.jit_compile` when set; otherwise on for GPUs only. On CPUs XLA
    was slower for BERT-sized steps in tools/benchmark.py; on TPUs the
    strategy compiles the whole step anyway.
    """
    if config.jit_compile is not None:
        return config.jit_compile
    devices = [d.upper() for d in strategy.extended.worker_devices]
    return any("GPU" in d for d in devices)


class TrainStep:
    """The training step on a fixed set of variables.

    Args:
        model: the model the step calls (maybe a view of the checkpointed
            one sharing its weights, e.g. packed rows).
        loss_fn: `(labels, outputs) -> per-example loss [batch]`.
        optimizer: built under `strategy.scope()`.
        strategy: a `tf.distribute.Strategy`.
        variables: the variables this step trains.
        global_batch_size: examples per step over all replicas.
        clipnorm: clip gradients to this global norm (0 = off).
        loss_scale: a `precision.DynamicLossScale` (float16), or None.
        jit_compile: compile the forward and backward pass with XLA.
    """

    def __init__(
        self,
        model,
        loss_fn,
        optimizer,
        strategy,
        variables,
        global_batch_size,
        clipnorm,
        loss_scale=None,
        jit_compile=False,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.strategy = strategy
        self.variables = variables
        self.global_batch_size = global_batch_size
        self.clipnorm = clipnorm
        self.loss_scale = loss_scale
        self.used_variables = []  # those with a gradient, known once traced
        self._compute = self._gradients
        if jit_compile:
            # XLA compiles the forward/backward pass only: collectives and the
            # optimizer update stay outside, where every strategy supports them.
            self._compute = tf.function(self._gradients, jit_compile=True)

    def _gradients(self, features, labels):
        loss_scale = self.loss_scale
        with tf.GradientTape() as tape:
            # Under a mixed policy the loss is computed in float32.
            outputs = self.model(features, training=True)
            if not getattr(self.loss_fn, "reads_compute_dtype", False):
                outputs = precision.float32_outputs(outputs)
            per_example = self.loss_fn(labels, outputs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = loss * loss_scale.scale if loss_scale is not None else loss
        grads = tape.gradient(scaled, self.variables)
        if loss_scale is not None:
            grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
            grads = [None if g is None else g / loss_scale.scale for g in grads]
        return loss, grads

    def _replica_gradients(self, features, labels):
        loss, grads = self._compute(features, labels)
        # Variables the head does not use (e.g. BERT's pooler under mean
        # pooling) have no gradient; collectives cannot carry None.
        used = [(g, v) for g, v in zip(grads, self.variables) if g is not None]
        self.used_variables[:] = [v for _, v in used]
        # Embedding lookups give IndexedSlices with a row once per use.
        # Keras 3's Adam squares those slices before summing them
        # (sum g_i^2 instead of (sum g_i)^2 in its second moment) and
        # then densifies anyway, so summing them into a dense gradient
        # here costs nothing extra and makes the update the dense one.
        grads = [tf.convert_to_tensor(g) for g, _ in used]
        context = tf.distribute.get_replica_context()
        return loss, context.all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def _apply(self, grads):
        if self.clipnorm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.clipnorm)
        self.optimizer.apply(grads, self.used_variables)

    def _replica_step(self, features, labels):
        loss, grads = self._replica_gradients(features, labels)
        self._apply(grads)
        return loss

    @staticmethod
    def _replica_finite(grads):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

    def _scaled_step(self, features, labels):
        strategy = self.strategy
        loss, grads = strategy.run(self._replica_gradients, args=(features, labels))
        # The same on every replica and worker: the gradients are summed.
        finite = strategy.experimental_local_results(
            strategy.run(self._replica_finite, args=(grads,))
        )[0]

        # An overflowed step is skipped whole: no update, no step counted.
        # The branch is taken in cross-replica context because the
        # optimizer's update synchronises, which a cond inside a replica
        # function cannot hold.
        def update():
            strategy.run(self._apply, args=(grads,))
            return tf.constant(True)

        tf.cond(finite, update, lambda: tf.constant(False))
        with tf.control_dependencies([self.loss_scale.update(finite)]):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def step(self, features, labels):
        """One optimizer step over all replicas; returns the summed loss."""
        if self.loss_scale is not None:
            return self._scaled_step(features, labels)
        per_replica = self.strategy.run(self._replica_step, args=(features, labels))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def functions(self):
        """`(one step, several steps)` as `tf.function`s: `(features, labels)`, `(iterator, n)`."""

        # iterator in one call, so the host (a TPU's, above all) is not
        # waited on after every step. Batch shapes are the iterator's spec.
        @tf.function
        def train_steps(iterator, count):
            total = tf.constant(0.0)
            for _ in tf.range(count):
                total += self.step(*next(iterator))
            return total / tf.cast(count, tf.float32)

        # Length buckets bound the batch shapes: one trace per bucket, each
        # with static shapes (what XLA needs, and what lets grappler plan).
        # No AutoGraph: the step has no tensor-dependent Python control flow
        # (the loss-scale branch is an explicit `tf.cond`), and converting
        # every Keras and keras-hub call inside it costs tracing time.
        return tf.function(self.step, reduce_retracing=False, autograph=False), train_steps
