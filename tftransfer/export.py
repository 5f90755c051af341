"""Export a trained run as a SavedModel that takes raw text.

The serving graph is the task's own `tokenize` -> model -> `postprocess`, so
training and serving cannot drift apart. It is written with
`tf.saved_model.save` of a `tf.Module` (weights once; Keras 3.15
`model.export` stores them twice) into `<export_dir>/<version>/`, the layout
TF Serving watches, through a temporary folder renamed into place so that a
server never sees a half-written version.

The graph uses TF Text ops; `assets.extra/tftransfer_export.json` lists them
with the minimum TF Serving version that links them. `assets.extra/
tf_serving_warmup_requests` holds requests of typical shapes that TF Serving
replays at load (`serving_warmup`).

Example:

>>> import tempfile
>>> import tensorflow as tf
>>> import tensorflow_text  # noqa: F401  (registers the ops the graph uses)
>>> from tftransfer import configs, experiment, export
>>> params = configs.load(
...     ["configs/demo_goemotions_sentiment.yaml"],
...     {"data": {"train": {"max_examples": 64}, "validation": {"path": ""}},
...      "task": {"text_classification": {"max_seq_length": 16}},
...      "backbone": {"keep_layers": 1}},  # MiniLM's first block of 6: a quick export
... )
>>> run = experiment.build(params)  # untrained: enough to show the contract
>>> path = export.save(run.task, run.model, run.backbone, tempfile.mkdtemp())
>>> serve = tf.saved_model.load(path).signatures["serving_default"]
>>> sorted(serve(text=tf.constant(["what a lovely day"])))
['label_ids', 'labels', 'probabilities']

A trained run exports with `export.export_run(model_dir)`.
"""

import datetime
import json
import os

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tqdm.auto import tqdm

import tftransfer
from tftransfer import configs, fileio, loaded_run, serving_warmup
from tftransfer.models.serving_weights import ServingWeights, captured_variables
from tftransfer.run_dir import RunDir
from tftransfer.training import precision

# TF Serving links TF Text's ops; RoundRobinTrim arrived in the 2.20 builds.
MIN_TF_SERVING = {"TFText>RoundRobinTrim": "2.20"}
DEFAULT_MIN_TF_SERVING = "2.20"
METADATA = os.path.join("assets.extra", "tftransfer_export.json")


class ServingModule(tf.Module):
    """Holds the weights and the lookup tables the serving functions capture."""

    def __init__(self, task, functions):
        super().__init__(name="tftransfer_serving")
        # The tf.Variables the signatures read, each once: the model's and
        # the weights prepared for serving (`serving_weights`), whose float32
        # sources are then not stored. Not the Keras model: as an attribute
        # it would be tracked and its variables written a second time (that
        # is how Keras' own `model.export` doubles the size).
        self.weights = captured_variables(functions.values())
        # The tokenizer's lookup tables (vocabulary, BPE merges and BPE's
        # word cache) are resources the graph captures; they must be tracked.
        self.tokenizer = task.tokenizer


def signatures(functions):
    """`{name: concrete function}` for `tf.saved_model.save`.

    `functions` are a task's `serving_functions`. They are traced here and
    not kept on the `ServingModule`: a tracked `tf.function` is traced again
    by `tf.saved_model.save` (for SmolLM2's decoding loop, seconds more).
    Floating outputs are float32 whatever the model computes in, so a
    bfloat16 export answers clients exactly like a float32 one.
    """

    def float32(fn):
        return lambda *args: precision.float32_outputs(fn(*args))

    # Tracing a decoder's generation loop takes a minute: show it moving.
    progress = tqdm(functions.items(), desc="Tracing signatures", unit="signature", leave=False)
    return {
        name: tf.function(float32(fn), autograph=False).get_concrete_function(*specs.values())
        for name, (fn, specs) in progress
    }


# Serving computes no gradients; saving the gradient functions of ops with
# custom gradients costs seconds for a 30-layer decoder.
SAVE_OPTIONS = tf.saved_model.SaveOptions(experimental_custom_gradients=False)


def next_version(export_dir):
    """One more than the largest integer version folder (1 if none)."""
    if not tf.io.gfile.isdir(export_dir):
        return 1
    names = (n.rstrip("/") for n in tf.io.gfile.listdir(export_dir))
    versions = [int(n) for n in names if n.isdigit()]
    return max(versions, default=0) + 1


def read_saved_model_proto(saved_model_dir):
    """The parsed `saved_model.pb` of a SavedModel folder."""
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def graph_ops(saved_model_dir, proto=None):
    """The set of op types used by a SavedModel's graphs and functions."""
    if proto is None:
        proto = read_saved_model_proto(saved_model_dir)
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def non_core_ops(ops):
    """Ops not built into TensorFlow (here: the TF Text ops)."""
    core = set(dir(tf.raw_ops))
    return sorted(op for op in ops if op not in core)


def save(task, model, backbone, export_dir, version=0, extra_metadata=None, warmup=True):
    """Writes the SavedModel to `<export_dir>/<version>/` atomically.

    Args:
        task: the task whose serving functions are exported.
        model: its model, with the weights to export.
        backbone: the `backbones.Backbone` the model was built on.
        export_dir: TF Serving's model base folder.
        version: the version folder; 0 = one more than the largest.
        extra_metadata: more keys for `assets.extra/tftransfer_export.json`.
        warmup: write TF Serving warmup records of the task's typical
            requests (`serving_warmup`).

    Returns:
        The final version folder.
    """
    version = version or next_version(export_dir)
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} exists; TF Serving versions are never overwritten")
    with fileio.atomic_folder(final) as tmp:
        # Casts and concatenations of the weights happen once, here, not on
        # every request. The functions hold their variables weakly: the
        # module keeps them alive.
        with ServingWeights().scope():
            functions = signatures(task.serving_functions(model, backbone))
            module = ServingModule(task, functions)
        logging.info(f"Writing the SavedModel ({', '.join(functions)})...")
        tf.saved_model.save(module, tmp, signatures=functions, options=SAVE_OPTIONS)
        metadata = {
            **_describe(tmp),
            "task": task.name,
            "labels": list(task.labels),
            **task.export_metadata(),
            **(extra_metadata or {}),
        }
        tf.io.gfile.makedirs(os.path.join(tmp, "assets.extra"))
        requests = task.warmup_requests() if warmup else []
        if requests:
            serving_warmup.write(tmp, requests)
            metadata["warmup_requests"] = len(requests)
        with tf.io.gfile.GFile(os.path.join(tmp, METADATA), "w") as f:
            json.dump(metadata, f, indent=2)
    return final


def _spec(tensor_info):
    shape = tensor_info.tensor_shape
    dims = None if shape.unknown_rank else [d.size if d.size >= 0 else None for d in shape.dim]
    return {"dtype": tf.as_dtype(tensor_info.dtype).name, "shape": dims}


def _describe(saved_model_dir):
    """What a client needs to know of a written SavedModel: signatures and ops.

    Read from `saved_model.pb` (the signature definitions TF Serving sees)
    rather than by loading the model, which for SmolLM2 takes ~15 s.
    """
    proto = read_saved_model_proto(saved_model_dir)
    custom = non_core_ops(graph_ops(saved_model_dir, proto))
    min_serving = max(
        [MIN_TF_SERVING.get(op, DEFAULT_MIN_TF_SERVING) for op in custom]
        or [DEFAULT_MIN_TF_SERVING],
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    [meta_graph] = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    signatures = {
        name: {
            "inputs": {k: _spec(v) for k, v in sorted(signature.inputs.items())},
            "outputs": {k: _spec(v) for k, v in sorted(signature.outputs.items())},
        }
        for name, signature in sorted(meta_graph.signature_def.items())
        if not name.startswith("__")  # e.g. `__saved_model_init_op`
    }
    return {
        "tftransfer_version": tftransfer.__version__,
        "tensorflow_version": tf.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "signature": "serving_default",
        "inputs": signatures["serving_default"]["inputs"],
        "outputs": signatures["serving_default"]["outputs"],
        "signatures": signatures,
        "custom_ops": custom,
        "requires": "tensorflow_text (import it before loading)" if custom else "",
        "min_tf_serving_version": min_serving,
    }


def export_run(model_dir, export_dir="", version=0, checkpoint="best", mixed_precision=None):
    """Exports the best (or latest) checkpoint of a trained run.

    `mixed_precision` (default: `export.mixed_precision` of the run's
    config, else its `runtime.mixed_precision`, `auto` decided on this
    machine) makes the served model compute in e.g. bfloat16; its outputs
    stay float32.
    """
    params = configs.from_model_dir(model_dir)
    folder = export_dir or params.export.export_dir
    if folder and tf.io.gfile.exists(folder) and not tf.io.gfile.isdir(folder):
        # Found before the minutes of loading and tracing, not after.
        raise NotADirectoryError(f"export folder {folder} is a file; give a folder")
    if not mixed_precision:  # None or "": as the config says
        mixed_precision = params.export.mixed_precision or params.runtime.mixed_precision
    configs.check_choice("mixed_precision", mixed_precision, precision.choices())
    mixed_precision, note = precision.resolve(mixed_precision)
    logging.info(f"The export computes in {note}.")
    loaded = loaded_run.LoadedRun(model_dir, checkpoint, mixed_precision)
    cfg = loaded.params.export
    export_dir = export_dir or cfg.export_dir or RunDir(model_dir).export
    return save(
        loaded.task,
        loaded.model,
        loaded.backbone,
        export_dir,
        version or cfg.version,
        {
            "checkpoint": loaded.checkpoint_path,
            "compute_dtype": precision.compute_dtype(mixed_precision),
        },
        warmup=cfg.warmup_requests,
    )


def read_metadata(version_dir):
    """Reads the export's metadata (inputs, outputs, labels, ops)."""
    return fileio.read_json(os.path.join(version_dir, METADATA))
