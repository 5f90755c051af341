"""The small layers tasks put on a backbone's outputs.

Example:

>>> import keras
>>> from tftransfer.models import heads
>>> x = keras.Input(shape=(None, 16))
>>> heads.dense_head(x, units=3, dropout=0.1).shape
(None, None, 3)
>>> mask = keras.Input(shape=(None,), dtype="int32")
>>> heads.pool({"sequence_output": x}, mask, "mean").shape
(None, 16)
"""

import keras


def dense_head(x, units, dropout, name="logits"):
    """Dropout then a dense layer with BERT's initialiser (truncated normal, 0.02).

    The layers are named `head_dropout` and `name`, so models that share a
    head (the packed classifier) find them with `get_layer`.
    """
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=name,
        # float32 under a mixed-precision policy too: softmax and the loss
        # need its range (Keras' advice for the last layer).
        dtype="float32",
    )(x)


#: how `pool` turns a sequence into one vector per text.
POOLINGS = ("pooled", "cls", "mean", "last")


def pool(outputs, padding_mask, pooling, decoder=False):
    """One vector per text from a backbone's outputs.

    Args:
        outputs: the backbone's outputs (`sequence_output`, maybe
            `pooled_output`).
        padding_mask: `[batch, length]`, 1 for real tokens.
        pooling: `pooled` (BERT's pooler), `cls` (the first token), `mean`
            (masked mean) or `last` (the last real token: right or left
            padding).
        decoder: the backbone is a decoder (for the error message).
    """
    sequence = outputs["sequence_output"]
    if pooling == "pooled":
        if "pooled_output" not in outputs:
            raise ValueError(
                "task.text_classification.pooling: this backbone has no pooler; "
                f"use {'`last`' if decoder else '`cls`'} or `mean`"
            )
        return outputs["pooled_output"]
    if pooling == "mean":
        mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
        total = keras.ops.sum(sequence * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
    if pooling == "last":
        # The highest position with a real token: right or left padding.
        mask = keras.ops.cast(padding_mask, "int32")
        positions = keras.ops.cumsum(keras.ops.ones_like(mask), axis=1)  # 1, 2, ...
        last = keras.ops.argmax(mask * positions, axis=1)
        return keras.ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]
    return sequence[:, 0, :]
