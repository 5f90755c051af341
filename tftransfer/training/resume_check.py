"""May a new config continue the run already in a model_dir?

A checkpoint holds the weights of one task head, label set, backbone and
transfer strategy; restoring it under another config either fails deep in
TensorFlow or, worse, succeeds with the wrong meaning (labels in another
order). So a rerun whose `task`, `backbone` or `transfer` block differs from
the run's `params.yaml` is refused, naming the keys; the old run stays as it
was. Keys that only steer the loop (`trainer`, `data`, `runtime`, `export`)
may change on resume, and each change is reported, not mixed in silently.

Example:

>>> from tftransfer import configs
>>> old = configs.load([], "trainer.learning_rate=5e-5")
>>> new = configs.load([], "trainer.learning_rate=1e-4")
>>> incompatible, changed = differences(old, new)
>>> incompatible, changed
([], ['trainer.learning_rate: 5e-05 -> 0.0001'])
"""

import tensorflow as tf

from tftransfer import configs
from tftransfer.run_dir import RunDir

#: blocks whose change makes the checkpoint mean something else.
BINDING = ("task", "backbone", "transfer")


class IncompatibleRunError(configs.ConfigError):
    """The model_dir holds a run of another task, label set, backbone or strategy."""


def _flat(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _active(params_dict):
    """The config as a dict, with only the task block its `task.type` uses."""
    task = params_dict.get("task", {})
    kind = task.get("type")
    params_dict["task"] = {"type": kind, kind: task.get(kind)}
    return params_dict


def differences(old, new):
    """`(incompatible, changed)`: `key: old -> new` lines, binding and loop-only."""
    before, after = _flat(_active(old.as_dict())), _flat(_active(new.as_dict()))
    incompatible, changed = [], []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        line = f"{key}: {before.get(key)} -> {after.get(key)}"
        (incompatible if key.split(".")[0] in BINDING else changed).append(line)
    return incompatible, changed


def check(model_dir, params, has_checkpoint):
    """Raises `IncompatibleRunError` if `params` cannot resume the run in `model_dir`.

    Returns:
        The loop-only changes (`key: old -> new`), to report; `[]` for a new run.
    """
    if not has_checkpoint or not tf.io.gfile.exists(RunDir(model_dir).params):
        return []
    old = configs.from_model_dir(model_dir)
    incompatible, changed = differences(old, params)
    if incompatible:
        shown = "; ".join(incompatible[:5]) + ("; ..." if len(incompatible) > 5 else "")
        raise IncompatibleRunError(
            f"{model_dir} holds a run this config cannot resume ({shown}); its params.yaml "
            "and checkpoints are left as they are: use another --model_dir, or --overwrite "
            "to start over there"
        )
    return changed
