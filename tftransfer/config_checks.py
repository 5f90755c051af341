"""Declared types, ranges and choices of config fields, checked generically.

A config field declares what it accepts where it is defined:

```python
batch_size: int = config_checks.bounded(32, low=1)
pooling: str = config_checks.one_of("auto", ("auto", "cls", "mean"))
```

and `check_tree` walks a whole experiment config and checks every field
against its type annotation (`Optional[...]` allows null, `List[...]`
checks each element), its bounds and its choices. A float is never NaN or
infinite. So a new field is checked the moment it is declared, and every
error names the full dotted key. Model Garden's configs store whatever they
are given; its `is_strict` override only checks that keys exist.

Example:

>>> import dataclasses
>>> from official.modeling.hyperparams import base_config
>>> @dataclasses.dataclass
... class Loop(base_config.Config):
...     steps: int = bounded(10, low=1)
>>> check_tree(Loop(steps=0), "loop")
Traceback (most recent call last):
...
tftransfer.config_checks.ConfigError: loop.steps must be >= 1, got 0
"""

import codecs
import dataclasses
import math
import re
import typing

#: longest piece of a user's value an error message repeats.
SHOWN_CHARS = 200
_METADATA = "tftransfer"


class ConfigError(ValueError):
    """A config key that does not exist, or a value it does not accept."""


def shown(value, repr_=True):
    """`value` for an error message: its repr, cut to `SHOWN_CHARS`."""
    text = repr(value) if repr_ else str(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def bounded(
    default=dataclasses.MISSING,
    *,
    default_factory=dataclasses.MISSING,
    low=None,
    high=None,
    above=None,
    below=None,
    check=None,
):
    """A dataclass field whose numbers (or list elements) lie in a range.

    Args:
        default, default_factory: as `dataclasses.field`.
        low, high: inclusive bounds.
        above, below: exclusive bounds.
        check: optional `check(key, value)` for what a range cannot say.
    """
    spec = {"low": low, "high": high, "above": above, "below": below, "check": check}
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_METADATA: spec}
    )


def one_of(default=dataclasses.MISSING, choices=(), *, default_factory=dataclasses.MISSING):
    """A dataclass field whose value (or each list element) is one of `choices`.

    `choices` may be a callable returning them, for registries that grow.
    """
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_METADATA: {"choices": choices}}
    )


def text(default=dataclasses.MISSING, *, check=None, default_factory=dataclasses.MISSING):
    """A dataclass field of free text (a path, a column name): any string.

    Args:
        check: optional `check(key, value)`, e.g. `codec`.
    """
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_METADATA: {"check": check}}
    )


def codec(key, value):
    """Refuses a text encoding name Python does not know."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(
            f"{key}: unknown text encoding {shown(value)} (e.g. utf-8, latin-1, cp1252)"
        ) from None


def check_choice(key, value, allowed):
    """Raises `ConfigError` unless `value` is one of `allowed`, naming `key`."""
    if value not in allowed:
        choices = ", ".join(map(str, allowed))
        raise ConfigError(f"{key} must be one of: {choices}; got `{shown(value, repr_=False)}`")


def check_range(key, value, low=None, high=None, above=None, below=None):
    """Raises `ConfigError` unless `value` lies within the given bounds."""
    tests = (
        (low, ">=", lambda v, b: v >= b),
        (above, ">", lambda v, b: v > b),
        (high, "<=", lambda v, b: v <= b),
        (below, "<", lambda v, b: v < b),
    )
    if all(bound is None or ok(value, bound) for bound, _, ok in tests):
        return
    bounds = " and ".join(f"{sign} {bound}" for bound, sign, _ in tests if bound is not None)
    raise ConfigError(f"{key} must be {bounds}, got {shown(value)}")


def declared(cls):
    """`{field name: (type hint, spec)}` of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.metadata.get(_METADATA)) for f in dataclasses.fields(cls)}


def _optional(hint):
    """`(inner type, allows None)` of a type hint."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else typing.Any), True
    return hint, False


def _list_of(hint):
    """The element type of `List[X]`/`Sequence[X]`, or None if `hint` is not a list."""
    if typing.get_origin(hint) in (list, tuple, typing.Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        return args[0] if args else typing.Any
    return None


def coerce(hint, value, where):
    """`value` as a `hint`, reading YAML/CSV text such as `1e-2` or `true`.

    Raises:
        ConfigError: the value cannot be that type; names `where`.
    """
    inner, nullable = _optional(hint)
    if value is None:
        if nullable or inner is typing.Any:
            return None
        raise ConfigError(f"{where} cannot be null")
    element = _list_of(inner)
    if element is not None:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {shown(value)}")
        return [coerce(element, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where} must be true or false, got {shown(value)}")
    if inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise ConfigError(f"{where} must be a whole number, got {shown(value)}")
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {shown(value)}")
        try:
            # YAML 1.1 reads `1e-2` (no dot) as a string.
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where} must be a number, got {shown(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {shown(value)}")
        return number
    if inner is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (dict, list, tuple)):
            raise ConfigError(f"{where} must be text, got {shown(value)}")
        # YAML reads `label_delimiter: 1` or `split: 2024` as numbers.
        return str(value)
    return value


def _check_value(key, hint, spec, value):
    value = coerce(hint, value, key)
    inner, _ = _optional(hint)
    if value is None or not spec:
        return
    items = value if _list_of(inner) is not None else [value]
    for i, item in enumerate(items):
        item_key = f"{key}[{i}]" if items is value else key
        choices = spec.get("choices")
        if choices:
            check_choice(item_key, item, choices() if callable(choices) else choices)
        bounds = {k: spec.get(k) for k in ("low", "high", "above", "below")}
        if any(b is not None for b in bounds.values()):
            check_range(item_key, item, **bounds)
    if spec.get("check"):
        spec["check"](key, value)


def check_tree(config, prefix):
    """Checks every declared field of `config` and of the configs inside it.

    Args:
        config: a `base_config.Config` dataclass instance.
        prefix: its dotted key, e.g. `trainer` (empty for the top).

    Raises:
        ConfigError: naming the first dotted key whose value is refused.
    """
    for name, (hint, spec) in declared(type(config)).items():
        key = f"{prefix}.{name}" if prefix else name
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            check_tree(value, key)
        elif dataclasses.is_dataclass(hint) and value is None:
            raise ConfigError(f"{key} cannot be null: give its keys or leave it out")
        else:
            _check_value(key, hint, spec, value)


def walk(config, prefix=""):
    """Yields `(dotted key, type hint, spec)` of every leaf field under `config`.

    `spec` is what the field declared (`bounded`, `one_of`, `text`), None for
    booleans. The config reference (docs) and the suite's property test
    enumerate the fields this way.
    """
    for name, (hint, spec) in declared(type(config)).items():
        key = f"{prefix}.{name}" if prefix else name
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            yield from walk(value, key)
        else:
            yield key, hint, spec


def undeclared(config_class):
    """Names of fields (other than booleans and nested configs) declaring nothing.

    Numbers declare a range (`bounded`), enumerations their choices
    (`one_of`), free text says so (`text`).

    The suite asserts this is empty for every registered config class, so
    a new field cannot skip its declaration.
    """
    out = []
    for name, (hint, spec) in declared(config_class).items():
        inner, _ = _optional(hint)
        inner = _list_of(inner) or inner
        if dataclasses.is_dataclass(inner) or inner is bool:
            continue
        if spec is None:
            out.append(name)
    return out
