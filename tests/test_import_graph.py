"""The package's layers, read from its import statements (including those inside functions).

Lower layers never import higher ones, and no module imports itself back
through others: `config_checks` is a leaf; text ops, model code and data
readers know no task; tasks know no command, experiment or export.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tftransfer"


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
    return {name for name in found if name in MODULES and name != "tftransfer"}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _reaches(start, target):
    seen, stack = set(), [start]
    while stack:
        for nxt in GRAPH[stack.pop()]:
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def test_no_module_imports_itself_back():
    circles = sorted(name for name in GRAPH if _reaches(name, name))
    assert circles == []


def _in(package):
    return [n for n in MODULES if n == package or n.startswith(package + ".")]


@pytest.mark.parametrize(
    "lower,higher",
    [
        ("tftransfer.config_checks", "tftransfer"),
        ("tftransfer.text", "tftransfer.tasks"),
        ("tftransfer.models", "tftransfer.tasks"),
        ("tftransfer.data", "tftransfer.tasks"),
        ("tftransfer.tasks", "tftransfer.cli"),
        ("tftransfer.tasks", "tftransfer.experiment"),
        ("tftransfer.tasks", "tftransfer.export"),
        ("tftransfer.training", "tftransfer.experiment"),
    ],
)
def test_a_lower_layer_imports_no_higher_one(lower, higher):
    wrong = {
        (name, imported)
        for name in _in(lower)
        for imported in GRAPH[name]
        if (imported == higher or imported.startswith(higher + ".")) and imported not in _in(lower)
    }
    assert wrong == set()
