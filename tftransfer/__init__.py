"""tftransfer: transfer learning for NLP on TensorFlow, Keras 3 and keras-hub."""

import os

# keras-hub models, tf.data pipelines and tf.distribute strategies must all run
# on the TensorFlow backend; set it before anything imports keras.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
