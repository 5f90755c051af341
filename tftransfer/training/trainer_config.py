"""The `trainer` and `runtime` blocks of the experiment config: how and where to train.

Example:

>>> from tftransfer.training.trainer_config import TrainerConfig
>>> TrainerConfig(epochs=2).batch_size
32
"""

import dataclasses
from typing import Optional

from official.modeling.hyperparams import base_config

from tftransfer.config_checks import bounded, one_of, text

#: upper bounds that catch a slip (`1e23` epochs) long before an overflow.
MAX_BATCH = 2**20
MAX_EPOCHS = 1_000_000
MAX_STEPS = 2**31 - 1
DISTRIBUTION_STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


def precision_policies():
    """The `mixed_precision` choices (read when checked: the list imports Keras)."""
    from tftransfer.training import precision  # imports Keras

    return precision.choices()


@dataclasses.dataclass
class TrainerConfig(base_config.Config):
    """The training loop.

    Attributes:
        batch_size: global training batch size (split across replicas).
        eval_batch_size: global evaluation batch size.
        epochs: passes over the training data (ignored if train_steps > 0).
            0 (with train_steps 0) trains nothing: the run holds the starting
            weights as checkpoint 0, to evaluate, export or generate from a
            pretrained model as it is.
        train_steps: total optimizer steps (0 = from epochs).
        learning_rate: peak learning rate.
        warmup_ratio: fraction of steps with linear warmup from 0.
        weight_decay: decoupled weight decay (not on biases or LayerNorm).
        clipnorm: clip gradients to this global norm (0 = off).
        adam_beta_1, adam_beta_2, adam_epsilon: AdamW moments.
        checkpoint_every: save a checkpoint every N steps (and at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        eval_every: evaluate on validation every N steps (0 = each epoch).
        eval_on_start: also evaluate before the first step (logged as step
            0, as HF Trainer's `eval_on_start`): the pretrained model's score,
            the start of the learning curve. Never the best checkpoint.
        early_stopping_patience: stop after this many evaluations without
            improvement (0 = never).
        log_every: steps between training-loss records (history.jsonl,
            TensorBoard, training_curves.png).
        seed: seeds Python, NumPy, TF and Keras, and the data shuffle.
        jit_compile: compile the forward and backward pass with XLA. None =
            per device: on for GPUs, off for CPUs (slower there, measured in
            BENCHMARKS.md); TPUs compile the whole step regardless.
        steps_per_execution: optimizer steps per call of the compiled loop
            (a `tf.range` loop in one `tf.function`, as Keras'
            `steps_per_execution` and Orbit's `steps_per_loop`): fewer host
            round trips, which TPUs need (try 100s there). A call never runs
            past an evaluation or a checkpoint; gradual unfreezing runs one
            step per call. 1 on CPUs and GPUs.
    """

    batch_size: int = bounded(32, low=1, high=MAX_BATCH)
    eval_batch_size: int = bounded(64, low=1, high=MAX_BATCH)
    epochs: int = bounded(3, low=0, high=MAX_EPOCHS)
    train_steps: int = bounded(0, low=0, high=MAX_STEPS)
    learning_rate: float = bounded(5e-5, above=0.0)
    warmup_ratio: float = bounded(0.1, low=0.0, high=1.0)
    weight_decay: float = bounded(0.01, low=0.0)
    clipnorm: float = bounded(1.0, low=0.0)
    adam_beta_1: float = bounded(0.9, low=0.0, below=1.0)
    adam_beta_2: float = bounded(0.999, low=0.0, below=1.0)
    adam_epsilon: float = bounded(1e-6, above=0.0)
    checkpoint_every: int = bounded(500, low=1, high=MAX_STEPS)
    keep_checkpoints: int = bounded(3, low=1, high=MAX_STEPS)
    eval_every: int = bounded(0, low=0, high=MAX_STEPS)
    eval_on_start: bool = False
    early_stopping_patience: int = bounded(0, low=0, high=MAX_STEPS)
    log_every: int = bounded(10, low=1, high=MAX_STEPS)
    # NumPy seeds are 32-bit.
    seed: int = bounded(42, low=0, high=2**32 - 1)
    jit_compile: Optional[bool] = None
    steps_per_execution: int = bounded(1, low=1, high=MAX_STEPS)


@dataclasses.dataclass
class RuntimeConfig(base_config.Config):
    """Where training runs.

    Attributes:
        distribution_strategy: `one_device`, `mirrored`,
            `multi_worker_mirrored` or `tpu` (as in Model Garden).
        num_gpus: GPUs to use (0 = CPU; `mirrored` then spans all logical
            CPU devices).
        tpu: TPU address (`local` for a TPU VM, a name or grpc:// address).
        all_reduce_alg: `nccl`, `hierarchical_copy` or `ring`; empty = auto.
        mixed_precision: `auto` (bfloat16 on TPUs, GPUs from Ampere on and
            CPUs with AVX512_BF16 or AMX, where it has native units; float32
            elsewhere, where it is emulated and slower), `float32` (or
            empty), `bfloat16` or `float16` (also spelled
            `mixed_bfloat16`/`mixed_float16`): layers compute in that type,
            variables, logits and the loss stay float32 (a language model's
            vocabulary logits stay in that type, the loss reads them in
            float32 a chunk at a time); float16 (GPUs) scales the loss
            dynamically. The run logs what `auto` chose and
            records it in `params.yaml`'s header and `run_summary.json`.
    """

    distribution_strategy: str = one_of("one_device", DISTRIBUTION_STRATEGIES)
    num_gpus: int = bounded(0, low=0, high=4096)
    tpu: str = text("")
    all_reduce_alg: str = one_of("", ("", "nccl", "hierarchical_copy", "ring"))
    mixed_precision: str = one_of("auto", precision_policies)
