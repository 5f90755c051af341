"""TensorFlow's private internals: the merge call Keras' optimizers use; whether oneDNN runs.

Read from TensorFlow 2.20; `compat.check()` probes each.
"""

import tensorflow as tf

from tftransfer.compat.base import incompatible, require


# TensorFlow 2.20: Keras' TF optimizer applies weight decay through this (a
# merge call in a replica context, a plain call otherwise), so that one
# update per variable works under any strategy; the per-layer decay of
# `PreReducedAdamW` does as Keras does. tf.distribute has no public one.
def maybe_merge_call(fn, strategy, *args):
    """`fn(distribution, *args)` in cross-replica context; its result."""
    internal, owner = tf, "tf"
    for name in ("__internal__", "distribute", "interim", "maybe_merge_call"):
        internal = require(internal, name, "tensorflow", owner=owner)
        owner = f"{owner}.{name}"
    return internal(fn, strategy, *args)


# TensorFlow 2.20: whether this build runs oneDNN kernels (and the Grappler
# fusions into oneDNN's `_FusedMatMul`) has no public API; `False` when
# `TF_ENABLE_ONEDNN_OPTS=0` turns them off.
def onednn_enabled():
    """Whether TensorFlow's CPU kernels are oneDNN's here (False if it cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return False
    return bool(getattr(_pywrap_util_port, "IsMklEnabled", lambda: False)())


def check_merge_call():
    """Fails unless `maybe_merge_call` calls `fn(distribution, *args)` and returns its result."""
    seen = []

    def fn(distribution, *args):
        seen.append((distribution, args))
        return "result"

    strategy = tf.distribute.get_strategy()
    result = maybe_merge_call(fn, strategy, 1, 2)
    if result != "result" or len(seen) != 1 or seen[0][1] != (1, 2):
        raise incompatible(
            "tensorflow",
            "`tf.__internal__.distribute.interim.maybe_merge_call`",
            "no longer calls `fn(distribution, *args)` once and returns its result",
        )
    if not hasattr(seen[0][0], "extended"):
        raise incompatible(
            "tensorflow",
            "`tf.__internal__.distribute.interim.maybe_merge_call`",
            "passes `fn` no strategy",
        )
