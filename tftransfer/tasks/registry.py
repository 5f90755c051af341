"""The task registry: tasks by name, and tasks installed by other packages.

`register(name, config_class)` makes a task selectable as `task.type: <name>`
with its config as `task.<name>`; packages add tasks through the
`tftransfer.tasks` entry-point group (or `--import=<module>` on the command
line), loaded the first time the registry is read.

Example:

>>> from tftransfer import tasks
>>> "text_classification" in tasks.registered()
True
>>> tasks.get("text_clasification")
Traceback (most recent call last):
...
ValueError: unknown task `text_clasification`; known: causal_lm, ...
"""

from tftransfer import config_checks
from tftransfer.tasks.base import TaskConfig

_REGISTRY = {}


def register(name, config_class):
    """Class decorator that makes a task and its config available by name.

    Args:
        name: the value of `task.type` that selects the task.
        config_class: its `TaskConfig` subclass; becomes `task.<name>`.
    """
    if not (isinstance(config_class, type) and issubclass(config_class, TaskConfig)):
        raise TypeError(f"task `{name}`: the config class must subclass TaskConfig")
    missing = config_checks.undeclared(config_class)
    if missing:
        # Declared here, every field is checked (and its error names it) by
        # `configs.validate`, with no code in the task.
        raise TypeError(
            f"task `{name}`: {config_class.__name__} fields {', '.join(missing)} declare "
            "no range or choices; write them with tftransfer.config_checks.bounded, "
            "one_of or text"
        )

    def decorator(cls):
        if name in _REGISTRY:
            raise ValueError(f"task `{name}` is registered twice")
        cls.name = name
        cls.config_class = config_class
        _REGISTRY[name] = cls
        return cls

    return decorator


#: entry-point group through which an installed package adds tasks: its
#: `setup.cfg` names a module that registers them, e.g.
#: `[options.entry_points] tftransfer.tasks = score = my_package.score_task`.
ENTRY_POINT_GROUP = "tftransfer.tasks"
_LOADED_ENTRY_POINTS = set()


def load_plugins():
    """Imports the modules installed packages name under `ENTRY_POINT_GROUP` (once each)."""
    from importlib import metadata

    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.value in _LOADED_ENTRY_POINTS:
            continue
        _LOADED_ENTRY_POINTS.add(entry.value)
        try:
            entry.load()
        except Exception as e:
            raise ImportError(
                f"the task plugin `{entry.name} = {entry.value}` ({ENTRY_POINT_GROUP} entry "
                f"point of {entry.dist.name if entry.dist else 'an installed package'}) "
                f"failed to import: {e}"
            ) from e


def get(name):
    """Returns the task class registered under `name`."""
    registry = registered()
    if name not in registry:
        raise ValueError(f"unknown task `{name}`; known: {', '.join(sorted(registry))}")
    return registry[name]


def registered():
    """`{name: task class}` of every registered task (installed plugins too), in order."""
    load_plugins()
    return dict(_REGISTRY)
