"""Every config field and every ranged flag refuses wrong values in one line.

A wrong value is built from the field's declaration (its type hint, range or
choices), so a field added tomorrow is covered the day it is declared; a
numeric or enumerated field that declares nothing fails
`test_every_field_declares_what_it_accepts`.
"""

import math
import typing

import pytest
import yaml
from helpers import cli_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tftransfer import cli, config_checks, configs

FIELDS = sorted(
    (key, hint, spec) for key, hint, spec in config_checks.walk(configs.ExperimentConfig())
)
#: a spec of only a hostname or a preset name is checked when it is loaded,
#: so at the config level only its type can be wrong.
NO_DIGITS = st.characters(blacklist_categories=("Nd", "Cs"))
TEXT = st.one_of(
    st.text(NO_DIGITS, min_size=1, max_size=40),
    st.text(NO_DIGITS, min_size=1000, max_size=3000),  # very long
)


def _inner(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    nullable = typing.get_origin(hint) is typing.Union
    return (args[0] if nullable else hint), nullable


def _out_of_range(spec, kind):
    """Numbers just outside the declared bounds (each strategy a side)."""
    sides = []
    number = st.integers if kind is int else st.floats
    finite = {} if kind is int else {"allow_nan": False, "allow_infinity": False}
    if spec.get("low") is not None:
        low = spec["low"]
        sides.append(
            number(max_value=low - 1, **finite)
            if kind is int
            else number(max_value=low, exclude_max=True, **finite)
        )
    if spec.get("high") is not None:
        high = spec["high"]
        sides.append(
            number(min_value=high + 1, **finite)
            if kind is int
            else number(min_value=high, exclude_min=True, **finite)
        )
    if spec.get("above") is not None:
        sides.append(number(max_value=spec["above"], **finite))
    if spec.get("below") is not None:
        sides.append(number(min_value=spec["below"], **finite))
    return sides


def _wrong_scalar(kind, spec):
    spec = spec or {}
    mapping = st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2)
    if kind is bool:
        words = TEXT.filter(lambda v: v.lower() not in ("true", "false"))
        return st.one_of(words, st.integers(), st.floats(), mapping)
    if kind is int:
        not_whole = st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer()))
        return st.one_of(TEXT, not_whole, mapping, *_out_of_range(spec, int))
    if kind is float:
        not_finite = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "-inf"])
        return st.one_of(TEXT, not_finite, mapping, *_out_of_range(spec, float))
    if kind is str and spec.get("choices"):
        choices = spec["choices"]
        choices = choices() if callable(choices) else choices
        return st.one_of(TEXT, st.text(max_size=0), mapping).filter(lambda v: v not in choices)
    if kind is str:
        return st.one_of(mapping, st.lists(st.integers(), min_size=1, max_size=3))
    # `Any` (backbone.keep_layers): what keep_layers refuses for any depth.
    return st.sampled_from(["abc", -1, 0, 1.5, [3, 1], [], {"a": 1}, [0, 0]])


def wrong_value(hint, spec):
    """A Hypothesis strategy of values the field must refuse."""
    kind, nullable = _inner(hint)
    options = [] if nullable or kind is typing.Any else [st.none()]
    element = typing.get_args(kind)[0] if typing.get_origin(kind) is list else None
    if element is None:
        options.append(_wrong_scalar(kind, spec))
    else:
        options.append(st.one_of(TEXT, st.integers()))  # not a list
        options.append(_wrong_scalar(element, spec).map(lambda v: [v]))
        if spec and spec.get("check"):
            options.append(st.just([]))  # e.g. no bucket boundary: passes unless checked
    return st.one_of(*options)


def _nested(dotted, value):
    out = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def test_every_field_declares_what_it_accepts():
    from tftransfer import tasks

    classes = {configs.BackboneConfig, configs.TrainerConfig, configs.RuntimeConfig}
    classes |= {configs.ExportConfig, configs.DataConfig, configs.InputConfig}
    classes |= {configs.TransferConfig, configs.task_config_class()}
    classes |= {task.config_class for task in tasks.registered().values()}
    missing = {c.__name__: config_checks.undeclared(c) for c in classes}
    assert {name: fields for name, fields in missing.items() if fields} == {}


@pytest.mark.parametrize("key,hint,spec", FIELDS, ids=[f[0] for f in FIELDS])
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_wrong_value_for_any_config_field_is_one_line_naming_it(tmp_path, key, hint, spec, data):
    value = data.draw(wrong_value(hint, spec))
    if key == "data.bucket_boundaries" and value == []:
        return  # empty is valid: no bucketing
    override = yaml.safe_dump(
        _nested(key, value), default_flow_style=True, allow_unicode=True, width=math.inf
    )
    model_dir = tmp_path / "run"
    result = cli_call.run("train", f"--model_dir={model_dir}", f"--params_override={override}")
    assert result.returncode == 2, (value, result)
    assert len(result.error_lines) == 1, result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr
    assert not model_dir.exists()


#: what each command needs besides the flag under test.
REQUIRED = {
    "train": ["--model_dir={tmp}/run"],
    "evaluate": ["--model_dir={tmp}/run"],
    "export": ["--model_dir={tmp}/run"],
    "predict": ["--model_dir={tmp}/run"],
    "generate": ["--model_dir={tmp}/run"],
    "compare": ["--output_dir={tmp}/run"],
}


def _wrong_flag_values(flag):
    """Values `flag` must refuse, from what its parser declares; None = declares no range."""
    parser = flag.parser
    kind = type(parser).__name__
    if kind == "IntegerParser":
        assert parser.lower_bound is not None, f"--{flag.name} declares no lower_bound"
        values = ["abc", "1.5", str(parser.lower_bound - 1)]
        if parser.upper_bound is not None:
            values.append(str(parser.upper_bound + 1))
        return values
    if kind == "FloatParser":
        assert flag.validators, f"--{flag.name} needs a validator (NaN passes any bound)"
        return ["abc", "nan", "inf", "-1e9"]
    if kind == "EnumParser":
        return ["bogus", "ü" * 300]
    if kind == "ListParser" and flag.validators:
        return ["", "abc,ü"]
    return None


CASES = [
    (command, name, value)
    for command in cli.COMMANDS
    for name, flag in sorted(cli.command_flags(command).items())
    if len(name) > 1  # a short alias is checked with its long name
    for value in (_wrong_flag_values(flag) or [])
]


@pytest.mark.parametrize("command,name,value", CASES)
def test_a_flag_outside_its_declared_range_is_one_line_naming_it(tmp_path, command, name, value):
    required = [arg.format(tmp=tmp_path) for arg in REQUIRED[command]]
    result = cli_call.run(command, *required, f"--{name}={value}")
    assert result.returncode == 2, result
    assert len(result.error_lines) == 1, result.stderr
    assert f"--{name}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_ranged_flag_is_covered():
    covered = {(command, name) for command, name, _ in CASES}
    assert ("generate", "top_p") in covered and ("compare", "train_sizes") in covered
    assert ("predict", "batch_size") in covered and ("export", "version") in covered
