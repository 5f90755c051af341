"""Timing one pass of tftransfer's training step, and the model FLOPs it did.

Shared by the text-classification, NER and QA parts of `tools/benchmark.py`:
each builds its config and examples, then `time_pass` tokenizes and batches
the pass before the clock starts, runs one batch of each shape (the trace, and
XLA's compile when on), and times the pass.
"""

import collections
import functools
import statistics
import tempfile
import time

import numpy as np


def time_pass(params, examples, steps):
    """Rows/s of `steps` training steps of the run `params` describes.

    Args:
        params: an `ExperimentConfig`.
        examples: the training examples (read already).
        steps: optimizer steps to time (one pass: rows // batch size).

    Returns:
        A record: `examples_per_second` (rows: windows for NER and QA),
        model GFLOP/s on real and on padded tokens, the padding share, the
        AdamW update time alone, and the median step time per batch shape.
    """
    import keras
    import tensorflow as tf

    from tftransfer import experiment
    from tftransfer.data import packing
    from tftransfer.training import trainer

    keras.utils.set_random_seed(0)
    batch_size = params.trainer.batch_size
    run = experiment.build(params, train_examples=examples, total_steps=2 * steps)
    with tempfile.TemporaryDirectory() as tmp:
        loop = trainer.Trainer(
            run.model,
            run.task.loss,
            run.optimizer,
            run.strategy,
            tmp,
            params.trainer,
            batch_size,
            run.train_model,
        )
        batches = list(run.train_dataset().take(steps))  # tokenized and batched before timing
        shapes = {}
        for features, labels in batches:  # warm-up: one trace (and compile) per shape
            key = tuple(tuple(t.shape) for t in tf.nest.flatten((features, labels)))
            shapes.setdefault(key, (features, labels))
        for features, labels in shapes.values():
            loop._train_step(features, labels)
        per_shape = collections.defaultdict(list)
        start = time.perf_counter()
        for features, labels in batches:
            begin = time.perf_counter()
            float(loop._train_step(features, labels))
            shape = "x".join(map(str, features["padding_mask"].shape))
            per_shape[shape].append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - start
        update_ms = optimizer_update_ms(run.model, run.optimizer)
    lengths = np.concatenate([packing.example_lengths(f) for f, _ in batches])
    # The computed rows: one per example (or window), or the packed rows.
    widths = np.concatenate([np.full(*f["padding_mask"].shape) for f, _ in batches])
    real, padded = model_flops(run.backbone.model, lengths, widths)
    return {
        "examples_per_second": steps * batch_size / elapsed,
        "model_gflops_real": real / elapsed / 1e9,
        "model_gflops_padded": padded / elapsed / 1e9,
        "padding_fraction": 1 - lengths.sum() / widths.sum(),
        "optimizer_update_ms": update_ms,
        "step_ms_by_shape": {
            k: {"median": 1000 * statistics.median(v), "steps": len(v)}
            for k, v in sorted(per_shape.items())
        },
    }


def model_flops(backbone, lengths, widths):
    """Model FLOPs of one training pass over rows of `lengths` tokens.

    6 * N * T for the non-embedding weights (forward 2, backward 4) plus the
    attention products, 12 * layers * hidden * T^2 (QK^T and AV, forward
    and backward), on real tokens and on the padded widths actually computed.
    """
    embedding = sum(
        int(np.prod(w.shape))
        for w in backbone.weights
        if "embedding" in w.path and "layer_norm" not in w.path
    )
    non_embedding = backbone.count_params() - embedding
    layers, hidden = backbone.num_layers, backbone.hidden_dim

    def flops(t):
        t = np.asarray(t, np.float64)
        return float(np.sum(6 * non_embedding * t + 12 * layers * hidden * t * t))

    return flops(lengths), flops(widths)


def optimizer_update_ms(model, optimizer):
    """Median time of the optimizer's update alone (all weights; token embedding alone).

    The gradients are random; what is timed is AdamW's work per step.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    embedding = [v for v in variables if "token_embedding" in v.path]
    out = {}
    for name, subset in (("all", variables), ("token_embedding", embedding)):
        grads = [tf.random.normal(v.shape) * 1e-6 for v in subset]
        apply = tf.function(functools.partial(_apply_gradients, optimizer, subset))
        apply(grads)
        times = []
        for _ in range(10):
            begin = time.perf_counter()
            apply(grads)
            float(optimizer.iterations.numpy())
            times.append(time.perf_counter() - begin)
        out[name] = 1000 * statistics.median(times)
    return out


def _apply_gradients(optimizer, variables, grads):
    optimizer.apply(grads, variables)


def hf_trainer_pass(model, rows, collator, batch_size, learning_rate, bf16=False):
    """Rows/s of HF `Trainer` over `rows` (group_by_length), timed from the end of step 1.

    The optimizer does tftransfer's work: AdamW with tftransfer's default
    decoupled weight decay, which both leave off biases and LayerNorm weights
    (HF's own default, 0, would skip a pass over the weights that
    tftransfer's side makes).
    """
    import transformers

    from tftransfer.training import trainer_config

    times = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter())

    # transformers 5 renamed `group_by_length=True`.
    grouping = {"group_by_length": True}
    if "train_sampling_strategy" in transformers.TrainingArguments.__dataclass_fields__:
        grouping = {"train_sampling_strategy": "group_by_length"}
    with tempfile.TemporaryDirectory() as tmp:
        args = transformers.TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            num_train_epochs=1,
            **grouping,
            optim="adamw_torch",
            weight_decay=trainer_config.TrainerConfig().weight_decay,
            max_grad_norm=0.0,
            lr_scheduler_type="constant",
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            dataloader_drop_last=True,
            use_cpu=True,
            bf16=bf16,
            disable_tqdm=True,
        )
        transformers.Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=collator,
            callbacks=[Clock()],
        ).train()
    steps = len(times) - 1
    return {"examples_per_second": steps * batch_size / (times[-1] - times[0])}
