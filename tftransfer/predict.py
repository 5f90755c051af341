"""Predictions for raw texts, from a run's checkpoint or an exported SavedModel.

Both paths return the same JSON-ready records: the input fields plus the
serving signature's outputs for that example.

Example:

```python
from tftransfer import predict

predict.with_checkpoint("runs/demo", [{"text": "what a lovely day"}])
```
"""

import numpy as np
import tensorflow as tf

from tftransfer import experiment


def _to_json(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def with_checkpoint(model_dir, records, checkpoint="best"):
    """Predicts with the training-side graph (tf.data pipeline + Keras model)."""
    loaded = experiment.Loaded(model_dir, checkpoint)
    return experiment.predict_records(loaded, records)


def with_saved_model(version_dir, records, batch_size=64):
    """Predicts by calling an exported SavedModel's `serving_default`."""
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    input_names = list(serve.structured_input_signature[1])
    results = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        inputs = {name: tf.constant([r[name] for r in chunk]) for name in input_names}
        outputs = {k: v.numpy() for k, v in serve(**inputs).items()}
        for i, record in enumerate(chunk):
            result = dict(record)
            result.update({k: _to_json(v[i]) for k, v in outputs.items()})
            results.append(result)
    return results
