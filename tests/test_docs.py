"""The README, docs/ and notebooks stay true: links resolve, flags and config keys in their
commands exist."""

import json
import pathlib
import re

import pytest

from tftransfer import cli, config_checks, configs

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _text(page):
    if page.suffix != ".ipynb":
        return page.read_text(encoding="utf-8")
    # A notebook's links are in its Markdown cells.
    cells = json.loads(page.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _code_blocks(text):
    return re.findall(r"```(?:shell|bash|sh)?\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", PAGES + NOTEBOOKS, ids=[p.name for p in PAGES + NOTEBOOKS])
def test_every_relative_link_resolves(page):
    text = _text(page)
    missing = [
        target
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        if not target.startswith(("http://", "https://", "mailto:"))
        and not (page.parent / target).exists()
    ]
    assert missing == []


def _all_flags():
    names = {"help", "helpshort", "verbosity", "v", "logtostderr", "alsologtostderr"}
    for command in cli.COMMANDS:
        names |= set(cli.command_flags(command))
    return names


FLAGS = _all_flags()
KEYS = {key for key, _, _ in config_checks.walk(configs.ExperimentConfig())}
#: blocks whose keys are under the config (`a.b=` inside --params_override).
OVERRIDE = re.compile(r"--(?:pretrain_)?params_override=\"?'?([^\s\"']+)")


def _tftransfer_commands(text):
    """Each `tftransfer ...` command line of the page's shell blocks (continuations joined)."""
    for block in _code_blocks(text):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = command.split()
            while words and (words[0] == "time" or re.match(r"^[A-Z_]+=", words[0])):
                words = words[1:]  # `time`, VAR=value
            if "|" in words:
                words = words[words.index("|") + 1 :]  # echo ... | tftransfer predict
            if words and words[0].rsplit("/", 1)[-1] == "tftransfer":
                yield " ".join(words)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_flags_and_config_keys_in_commands_exist(page):
    wrong = []
    for command in _tftransfer_commands(page.read_text(encoding="utf-8")):
        for flag in re.findall(r"(?<![\w-])--([a-z_]+)", command):
            if flag not in FLAGS:
                wrong.append(f"--{flag}")
        for overrides in OVERRIDE.findall(command):
            for pair in overrides.split(","):
                key = pair.split("=", 1)[0]
                if "=" in pair and "." in key and key not in KEYS:
                    wrong.append(key)
    assert wrong == []


def test_the_commands_are_found():
    commands = list(_tftransfer_commands((ROOT / "README.md").read_text(encoding="utf-8")))
    assert any(c.startswith("tftransfer train") and "--params_override" in c for c in commands)
    assert any(c.startswith("tftransfer predict") for c in commands)
