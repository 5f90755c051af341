"""TF Serving warmup records: requests a server replays before it answers traffic.

A SavedModel's first call is slow: TensorFlow optimises the function's graph
and oneDNN builds its kernels for each new input shape on first use. TF
Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord file of
`PredictionLog` protos from the `tensorflow-serving-api` package) when it
loads a version, so those costs are paid before the version takes requests.
Every export writes a few requests of the shapes traffic has (one short text,
one full-length text, a batch of mixed lengths); `replay` does what the
server does, for a server written in Python.

Example:

>>> import tempfile
>>> import numpy as np
>>> folder = tempfile.mkdtemp()
>>> requests = [{"text": np.array([b"a short one", b"and a longer text"])}]
>>> path = write(folder, requests)
>>> [(name, sorted(inputs)) for name, inputs in read(folder)]
[('serving_default', ['text'])]
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

#: where TF Serving looks for the records, inside a version folder.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURE = "serving_default"

# Words of ordinary English: each is one WordPiece or a few BPE pieces, so a
# text of n words is about n tokens for every tokenizer we ship.
_WORDS = (
    "the film was a quiet and careful study of a family that could not agree on "
    "anything until the last scene where everyone finally spoke about what had "
    "happened during the long winter in the old house by the river"
).split()


def sample_text(num_words, offset=0):
    """A text of `num_words` English words (cycled), starting `offset` words in."""
    return " ".join(_WORDS[(offset + i) % len(_WORDS)] for i in range(num_words))


def typical_texts(max_words):
    """Texts of the shapes live traffic has: batch 1 short and long, a mixed batch.

    Args:
        max_words: the longest text to send (about the model's window).

    Returns:
        A list of requests, each a list of texts.
    """
    lengths = np.linspace(3, max_words, 16).astype(int)
    return [
        [sample_text(8)],
        [sample_text(max_words)],
        [sample_text(int(n), offset=i) for i, n in enumerate(lengths)],
    ]


def write(version_dir, requests, signature=SIGNATURE, model_name="model"):
    """Writes `requests` as TF Serving warmup records into a SavedModel folder.

    Args:
        version_dir: the SavedModel (version) folder.
        requests: a list of `{input name: array}`, each one request.
        signature: the signature the requests call.
        model_name: the model name in the records (TF Serving ignores it).

    Returns:
        The path of the records file.
    """
    path = os.path.join(version_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read(version_dir):
    """The warmup requests of a SavedModel as `[(signature, {name: ndarray})]`.

    Returns an empty list when the export has none (exports before they existed).
    """
    path = os.path.join(version_dir, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return []
    out = []
    for number, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), 1):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {number} is not a PredictLog")
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        out.append((request.model_spec.signature_name or SIGNATURE, inputs))
    return out


def replay(loaded, version_dir):
    """Calls a loaded SavedModel with its warmup requests, as TF Serving does at load.

    Args:
        loaded: the result of `tf.saved_model.load(version_dir)`.
        version_dir: its folder (where the records are).

    Returns:
        How many requests were replayed.
    """
    requests = read(version_dir)
    for signature, inputs in requests:
        loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return len(requests)
