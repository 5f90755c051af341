"""The small layers tasks put on a backbone's outputs.

Example:

>>> import keras
>>> from tftransfer.models import heads
>>> x = keras.Input(shape=(None, 16))
>>> heads.dense_head(x, units=3, dropout=0.1).shape
(None, None, 3)
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
