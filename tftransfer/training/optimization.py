"""AdamW with linear warmup then linear decay, as BERT fine-tuning uses.

Example:

>>> import keras
>>> from tftransfer import configs
>>> from tftransfer.training import optimization
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> cfg = configs.TrainerConfig(learning_rate=1e-3, warmup_ratio=0.1)
>>> optimizer = optimization.create_optimizer(cfg, total_steps=100, model=model)
>>> float(optimizer.learning_rate)  # the warmup starts at 0
0.0
>>> schedule = optimization.WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=100)
>>> [round(float(schedule(step)), 6) for step in (5, 10, 55, 100)]
[0.0005, 0.001, 0.0005, 0.0]
"""

import keras
import tensorflow as tf

from tftransfer import compat


@keras.saving.register_keras_serializable(package="tftransfer")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then linear decay to 0 at `total_steps`.

    Args:
        peak: the learning rate reached at the end of warmup.
        warmup_steps: steps of linear warmup.
        total_steps: step at which the rate reaches 0.
    """

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        up = self.peak * step / warmup
        down = (
            self.peak
            * tf.maximum(total - step, 0.0)
            / tf.maximum(total - tf.cast(self.warmup_steps, tf.float32), 1.0)
        )
        return tf.where(step < tf.cast(self.warmup_steps, tf.float32), up, down)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


class PreReducedAdamW(keras.optimizers.AdamW):
    """AdamW that takes gradients already summed across replicas.

    Keras 3 clips gradients *before* its own cross-replica sum, so global-norm
    clipping would act on each replica's share and differ from one-device
    training. The trainer therefore all-reduces and clips itself and this
    optimizer must not sum again.
    """

    _factors = None  # per-variable learning-rate factors, by optimizer index

    def set_learning_rate_factors(self, factors):
        """Scales each variable's rate: `{id(variable): factor}` (others 1).

        Keras optimizers have one rate for all variables; layer-wise rates
        (`transfer.strategy: llrd`) scale it per variable here, for the Adam
        step and the decoupled weight decay alike (as PyTorch's parameter
        groups do).
        """
        variables = compat.optimizer_variables(self)
        self._factors = [float(factors.get(id(v), 1.0)) for v in variables]

    def _factor(self, variable, dtype):
        if self._factors is None:
            return None
        return tf.constant(self._factors[compat.variable_index(self, variable)], dtype)

    def _all_reduce_sum_gradients(self, grads_and_vars):  # see compat.KERAS_ALL_REDUCE
        return grads_and_vars

    def _apply_weight_decay(self, variables):  # see compat.KERAS_WEIGHT_DECAY
        # Keras decays by a rate of 0 too: a multiply and a write of every
        # weight per step for nothing (3% of a SmolLM2 step; torch skips it).
        if not self.weight_decay:
            return

        # As Keras' TF optimizer does it: a merge call, then one update per
        # variable, so that it works in a replica context under any strategy.
        # The update is torch's `w *= 1 - lr * wd`, one pass over the weights
        # where Keras' `w -= w * wd * lr` takes two (a multiply, a subtract:
        # 1.5x the time, ~4% of a MiniLM step; BENCHMARKS.md).
        def decay(distribution, variables):
            def apply(variable, factor):
                rate = tf.cast(self.learning_rate, variable.dtype) * factor
                keep = 1.0 - tf.cast(self.weight_decay, variable.dtype) * rate
                variable.assign(variable * keep)

            for variable in variables:
                if compat.uses_weight_decay(self, variable):
                    factor = self._factor(variable, variable.dtype)
                    factor = tf.constant(1.0, variable.dtype) if factor is None else factor
                    if isinstance(variable, keras.Variable):
                        variable = variable.value
                    distribution.extended.update(variable, apply, args=(factor,), group=False)

        compat.maybe_merge_call(decay, compat.distribution_strategy(self), variables)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' Adam arithmetic in TF's fused `ResourceApplyAdam` kernel.

        Keras writes the update as about a dozen elementwise ops, each a pass
        over the weights (a fifth of a MiniLM training step on 2 CPU cores).
        The fused kernel computes the same `m`, `v` and
        `var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)` in one
        pass (BENCHMARKS.md, "Speed against Hugging Face"). The decoupled
        weight decay is applied before (`_apply_weight_decay`), as Keras does.
        """
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            factor = self._factor(variable, variable.dtype)
            if factor is not None:
                learning_rate = tf.cast(learning_rate, variable.dtype) * factor
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        factor = self._factor(variable, dtype)
        if factor is not None:
            learning_rate = tf.cast(learning_rate, dtype) * factor
        step = tf.cast(self.iterations + 1, dtype)
        momentum, velocity = compat.adam_slots(self, variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(momentum),
            v=_handle(velocity),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


def _handle(variable):
    if isinstance(variable, keras.Variable):
        variable = variable.value  # the backing tf.Variable
    return variable.handle


def create_optimizer(trainer_config, total_steps, model, learning_rate_factors=None):
    """Builds the optimizer for `model`.

    Weight decay skips biases and LayerNorm scales/offsets, as in BERT.

    Args:
        trainer_config: a `TrainerConfig`.
        total_steps: the schedule's length.
        model: the model whose trainable variables it updates.
        learning_rate_factors: `{id(variable): factor}` on the schedule's
            rate (layer-wise decay); None = the same rate for all.
    """
    compat.check_optimizer_hooks()  # else the overrides above would be silently ignored
    warmup = int(round(trainer_config.warmup_ratio * total_steps))
    schedule = WarmupLinearDecay(trainer_config.learning_rate, warmup, total_steps)
    optimizer = PreReducedAdamW(
        learning_rate=schedule,
        weight_decay=trainer_config.weight_decay,
        beta_1=trainer_config.adam_beta_1,
        beta_2=trainer_config.adam_beta_2,
        epsilon=trainer_config.adam_epsilon,
    )
    norms = [
        v
        for layer in compat.flatten_layers(model)
        if isinstance(layer, keras.layers.LayerNormalization)
        for v in layer.trainable_variables
    ]
    optimizer.exclude_from_weight_decay(var_list=norms, var_names=["bias"])
    optimizer.build(model.trainable_variables)
    if learning_rate_factors is not None:
        optimizer.set_learning_rate_factors(learning_rate_factors)
    return optimizer
