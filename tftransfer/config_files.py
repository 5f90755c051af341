"""Reading config text: YAML files and `--params_override` strings.

Both are parsed with a YAML loader that refuses a key given twice, and both
are bounded in size (nested YAML aliases can expand exponentially); every
error is one line naming the file (or the flag), the line and the column.

Example:

>>> from tftransfer import config_files
>>> config_files.parse_override_string("trainer.epochs=2,task.type=ner")
{'trainer': {'epochs': 2}, 'task': {'type': 'ner'}}
>>> config_files.parse_override_string("trainer: {epochs: 2, epochs: 3}")
Traceback (most recent call last):
...
tftransfer.config_checks.ConfigError: --params_override: ... `epochs` appears twice ...
"""

import tensorflow as tf
import yaml
from official.modeling.hyperparams import params_dict

from tftransfer.config_checks import ConfigError, shown

#: most values a config may expand to (YAML aliases can nest exponentially).
MAX_CONFIG_VALUES = 100_000


def _check_expanded_size(value, source):
    """Refuses a YAML alias bomb before anything walks its expansion.

    PyYAML builds aliases as shared references, so loading is instant, but
    every later copy or comparison walks the expansion (2^30 values for a
    page of `&a [*b, *b]` lines). Counting stops at the limit, so the check
    itself is fast.
    """
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{source}: expands to over {MAX_CONFIG_VALUES:,} values "
                "(nested YAML aliases?); a config is never that large"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def parse_override_string(text):
    """Parses `a.b=1,c.d=x` or a YAML/JSON mapping into a nested dict."""
    if isinstance(text, dict):
        return text
    text = (text or "").strip()
    if not text:
        return {}
    try:
        if "=" in text and not text.startswith("{"):
            text = params_dict.nested_csv_str_to_json_str(text)
        value = yaml.load(text, Loader=_StrictLoader)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"--params_override: cannot read {shown(text)}: {_one_line(e)}") from None
    _check_expanded_size(value, "--params_override")
    if not isinstance(value, dict):
        raise ConfigError(f"--params_override: expected key=value pairs, got {shown(text)}")
    return value


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping.

    YAML itself keeps the last value silently, so a config with `epochs: 3`
    and, further down, `epochs: 30` would train with whichever came last.
    """


def _mapping_without_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key `{key}` appears twice (lines {seen[key]} and {line}); keep one",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _one_line(error):
    """A parsing error's message on one line."""
    if isinstance(error, yaml.YAMLError):
        return _yaml_problem(error).lstrip(":").strip()
    return " ".join(str(error).split())


def _yaml_problem(error):
    """`:<line>:<column>: invalid YAML: <problem>` of a PyYAML error, on one line."""
    mark = getattr(error, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    what = "; ".join(p for p in parts if p) or " ".join(str(error).split())
    return f"{where}: invalid YAML: {what}"


def read_yaml(path):
    """The mapping in the YAML file `path`, or a `ConfigError` naming the file and line."""
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"config file not found: {path}")
    if tf.io.gfile.isdir(path):
        raise ConfigError(f"{path} is a directory; --config_file takes a YAML file")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x}); "
            "save the config file as UTF-8"
        ) from None
    try:
        value = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}{_yaml_problem(e)}") from None
    _check_expanded_size(value, path)
    return {} if value is None else value
