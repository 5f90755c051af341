"""docs/configs.md is generated from the config dataclasses and must be current."""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    path = os.path.join(ROOT, "tools", "make_config_reference.py")
    spec = importlib.util.spec_from_file_location("make_config_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_config_reference_page_is_up_to_date():
    tool = _tool()
    with open(tool.OUTPUT, encoding="utf-8") as f:
        on_disk = f.read()
    assert on_disk == tool.markdown(), "run: python tools/make_config_reference.py"


def test_every_key_of_the_config_is_on_the_page():
    from tftransfer import config_checks, configs, tasks

    text = _tool().markdown()
    plugins = {
        n for n, t in tasks.registered().items() if not t.__module__.startswith("tftransfer.")
    }
    for key, _, _ in config_checks.walk(configs.ExperimentConfig()):
        if key.split(".")[:2][-1] in plugins:
            continue  # a task another test module registered
        key = re.sub(
            r"^data\.(train|validation|test|unlabeled)\.",
            "data.{train,validation,test,unlabeled}.",
            key,
        )
        assert f"| `{key}` |" in text, key
