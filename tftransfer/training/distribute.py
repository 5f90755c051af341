"""The tf.distribute strategy named by the runtime config.

Model Garden's `distribute_utils` builds every strategy it knows; on CPU it
gives `mirrored` one device only, so here `mirrored` without GPUs spans all
logical CPU devices (how multi-device code is tested without accelerators).

Strategies are made once per process and configuration. A second
MirroredStrategy in the same process restarts its collective instance keys,
and its all-reduces then collide with the first one's ("Shape mismatch in
the collective instance 100"): training two models in one process (a
notebook, a sweep, our test suite) failed that way. A TPU system must also be
initialised only once.

Example:

>>> from tftransfer import configs
>>> from tftransfer.training import distribute
>>> strategy = distribute.get_strategy(configs.RuntimeConfig(distribution_strategy="one_device"))
>>> strategy.num_replicas_in_sync
1
>>> distribute.get_strategy(configs.RuntimeConfig()) is strategy  # one per configuration
True
"""

import tensorflow as tf
from official.common import distribute_utils

_STRATEGIES = {}


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


def _make_strategy(runtime_config):
    name = runtime_config.distribution_strategy.lower()
    if name == "mirrored" and runtime_config.num_gpus == 0:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    return distribute_utils.get_distribution_strategy(
        distribution_strategy=name,
        num_gpus=runtime_config.num_gpus,
        all_reduce_alg=runtime_config.all_reduce_alg or None,
        tpu_address=runtime_config.tpu,
    )
