"""The tf.distribute strategy named by the runtime config, and who writes what under it.

Model Garden's `distribute_utils` builds every strategy it knows; on CPU it
gives `mirrored` one device only, so here `mirrored` without GPUs spans all
logical CPU devices (how multi-device code is tested without accelerators).

Strategies are made once per process and configuration. A second
MirroredStrategy in the same process restarts its collective instance keys,
and its all-reduces then collide with the first one's ("Shape mismatch in
the collective instance 100"): training two models in one process (a
notebook, a sweep, our test suite) failed that way. A TPU system must also be
initialised only once.

Under `multi_worker_mirrored` every worker runs the same program on the same
model_dir (a shared filesystem such as `gs://`). Only the chief writes there;
the others write into `write_dir`'s temporary folder, which is removed when
they finish (the pattern of Model Garden and Keras' BackupAndRestore). All
workers still save their checkpoints, because a save may read variables
through collectives that every worker must join.

Example:

>>> from tftransfer import configs
>>> from tftransfer.training import distribute
>>> strategy = distribute.get_strategy(configs.RuntimeConfig(distribution_strategy="one_device"))
>>> strategy.num_replicas_in_sync
1
>>> distribute.get_strategy(configs.RuntimeConfig()) is strategy  # one per configuration
True
>>> distribute.is_chief(strategy), distribute.write_dir("runs/a", strategy)
(True, 'runs/a')
>>> distribute.per_replica_batch_size(32, strategy)
32
"""

import json
import os

import tensorflow as tf
from official.common import distribute_utils

from tftransfer import run_dir
from tftransfer.run_dir import RunDir

_STRATEGIES = {}


class DistributeError(ValueError):
    """A strategy cannot run as configured (no TPU, a batch that does not split)."""


def get_strategy(runtime_config):
    """Returns the `tf.distribute.Strategy` for a `configs.RuntimeConfig`."""
    key = (
        runtime_config.distribution_strategy.lower(),
        runtime_config.num_gpus,
        runtime_config.tpu,
        runtime_config.all_reduce_alg,
    )
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _make_strategy(runtime_config)
    return _STRATEGIES[key]


def check_tf_config(name):
    """Refuses a `TF_CONFIG` that is not a JSON cluster description, naming the variable."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return  # multi_worker_mirrored without one: a single worker
    try:
        value = json.loads(text)
    except ValueError as e:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({e}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise DistributeError(f"TF_CONFIG must be a JSON object, got {text[:200]!r}")
    if name != "multi_worker_mirrored":
        return
    cluster, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise DistributeError(
            'TF_CONFIG needs "cluster": {"worker": ["host:port", ...]} (one list per job)'
        )
    if not (
        isinstance(task, dict)
        and task.get("type") in cluster
        and isinstance(task.get("index"), int)
        and 0 <= task["index"] < len(cluster[task["type"]])
    ):
        raise DistributeError(
            'TF_CONFIG needs "task": {"type": <a job of "cluster">, "index": <its position>}, '
            f"got {task!r}"
        )


def _check_gpus(runtime_config):
    if runtime_config.num_gpus <= 0:
        return
    found = len(tf.config.list_physical_devices("GPU"))
    if runtime_config.num_gpus > found:
        raise DistributeError(
            f"runtime.num_gpus={runtime_config.num_gpus}, but TensorFlow sees {found} GPU(s) "
            "here; use --num_gpus=0 to train on the CPU"
        )


def _make_strategy(runtime_config):
    name = runtime_config.distribution_strategy.lower()
    check_tf_config(name)
    _check_gpus(runtime_config)
    if name == "mirrored" and runtime_config.num_gpus == 0:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    try:
        return distribute_utils.get_distribution_strategy(
            distribution_strategy=name,
            num_gpus=runtime_config.num_gpus,
            all_reduce_alg=runtime_config.all_reduce_alg or None,
            tpu_address=runtime_config.tpu,
        )
    except (tf.errors.OpError, ValueError) as e:
        if name != "tpu":
            raise DistributeError(f"runtime.distribution_strategy={name}: {e}") from None
        # TF's own error is a kernel-registration dump ("No OpKernel was
        # registered to support Op 'ConfigureDistributedTPU'").
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DistributeError(
            f"runtime.tpu={runtime_config.tpu or 'local'!r}: no TPU could be initialised "
            f"({reason}). On a Cloud TPU VM use --tpu=local; on Colab choose a TPU "
            "runtime (Runtime > Change runtime type); for a TPU node give its name or "
            "grpc:// address. Without a TPU use --distribution_strategy=one_device or mirrored."
        ) from None


def _task(strategy):
    """`(task_type, task_id, cluster_spec dict)`, or `(None, None, {})` outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return None, None, {}
    return resolver.task_type, resolver.task_id, spec


def is_multi_worker(strategy):
    """Whether the strategy spans several processes (a `TF_CONFIG` cluster)."""
    _, _, spec = _task(strategy)
    return sum(len(tasks) for tasks in spec.values()) > 1


def is_chief(strategy):
    """Whether this process writes the run: the `chief` task, else `worker` 0."""
    task_type, task_id, spec = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in spec


def write_dir(model_dir, strategy):
    """Where this process writes: `model_dir` on the chief, a temporary folder elsewhere."""
    if is_chief(strategy):
        return model_dir
    task_type, task_id, _ = _task(strategy)
    return RunDir(model_dir).worker_temp(task_type, task_id).path


#: the name of a non-chief worker's temporary folder in model_dir.
TEMP_PREFIX = run_dir.WORKER_TEMP_PREFIX


def remove_write_dir(model_dir, strategy):
    """Removes a non-chief worker's temporary folder (no-op on the chief)."""
    path = write_dir(model_dir, strategy)
    if path != model_dir and tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def needs_fixed_shapes(strategy):
    """Whether input batches must have one fully static shape (TPUs)."""
    return isinstance(strategy, tf.distribute.TPUStrategy)


def why_not_one_replica_paths(strategy):
    """Why paths built for one replica and varying batch shapes cannot run here, or None.

    Packing and the fused blocks' training lay out rows per batch:
    `experimental_distribute_dataset` would split a batch's rows and its
    examples independently, and TPUs compile one fixed shape.
    """
    if strategy.num_replicas_in_sync > 1:
        return f"needs one replica; got {strategy.num_replicas_in_sync}"
    if needs_fixed_shapes(strategy):
        return "needs batches that vary in rows; TPUs need one fixed shape"
    return None


def per_replica_batch_size(global_batch_size, strategy, key="trainer.batch_size"):
    """The batch each replica gets; a `DistributeError` unless the global batch splits evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise DistributeError(
            f"{key} is the global batch size, {global_batch_size}; it must divide by the "
            f"{replicas} replicas of this {type(strategy).__name__} (e.g. "
            f"{max(replicas, global_batch_size // replicas * replicas)})"
        )
    return global_batch_size // replicas
