"""tftransfer: transfer learning for NLP on TensorFlow, Keras 3 and keras-hub."""

import os

# keras-hub models, tf.data pipelines and tf.distribute strategies must all run
# on the TensorFlow backend; set it before anything imports keras.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
#: the user's own TF_CPP_MIN_LOG_LEVEL, which the command line leaves alone.
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
