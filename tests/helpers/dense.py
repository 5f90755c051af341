"""A tiny Dense classifier on synthetic data, trained by the real `Trainer`.

For the training loop's own behaviour (resuming, early stopping, Ctrl-C,
truncated checkpoints, steps_per_execution): none of it depends on the
backbone, and a 4 -> 2 Dense layer shows each property in a second or two
where a BERT run takes many, mostly in building and tracing the model.
"""

import keras
import numpy as np
import tensorflow as tf

from tftransfer import configs
from tftransfer.tasks import Metric
from tftransfer.training import optimization
from tftransfer.training.trainer import Trainer

#: 56 examples in batches of 8: 7 steps per epoch, as the tiny TSV of conftest.
EXAMPLES, FEATURES, BATCH = 56, 4, 8
STEPS_PER_EPOCH = EXAMPLES // BATCH
ACCURACY = Metric("accuracy")


def examples(seed=0):
    """`(x, y)`: separable synthetic features and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((EXAMPLES, FEATURES)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return x, y


def make_dataset(skip_steps):
    """The training stream as `Trainer.train` wants it: deterministic, resumable."""
    x, y = examples()
    stream = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(EXAMPLES, seed=7)
    return stream.repeat().batch(BATCH, drop_remainder=True).skip(skip_steps)


def loss(labels, logits):
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def train(model_dir, total_steps=None, evaluate=True, on_evaluate=None, **overrides):
    """Builds a fresh model and `Trainer` (a new process would) and trains.

    Args:
        model_dir: the run folder; resumed if it holds checkpoints.
        total_steps: the step to stop at (default: `config.epochs` epochs).
        evaluate: score the accuracy on the training examples each
            `eval_every` steps.
        on_evaluate: called before each evaluation (a test raises from it
            to die mid-run).
        **overrides: `TrainerConfig` fields.

    Returns:
        `(trainer, best record)`.
    """
    settings = {"batch_size": BATCH, "learning_rate": 3e-2, "warmup_ratio": 0.0, "seed": 7}
    config = configs.TrainerConfig(**{**settings, **overrides})
    total_steps = total_steps or config.epochs * STEPS_PER_EPOCH
    keras.utils.set_random_seed(config.seed)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = build_model()
        optimizer = optimization.create_optimizer(config, total_steps, model)
    x, y = examples()

    def accuracy():
        if on_evaluate is not None:
            on_evaluate()
        return {"accuracy": float(np.mean(np.argmax(model(x), -1) == y))}

    loop = Trainer(model, loss, optimizer, strategy, model_dir, config, BATCH)
    best = loop.train(
        make_dataset,
        total_steps,
        STEPS_PER_EPOCH,
        evaluate=accuracy if evaluate else None,
        primary_metric=ACCURACY,
    )
    return loop, best


def build_model():
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(2)])


def weights(model_dir):
    """The Dense layer's weights in the newest checkpoint of `model_dir`."""
    model = build_model()
    path = tf.train.latest_checkpoint(f"{model_dir}/checkpoints")
    tf.train.Checkpoint(model=model).restore(
        path
    ).expect_partial().assert_existing_objects_matched()
    return [w.numpy() for w in model.weights]
