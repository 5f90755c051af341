"""The Colab quickstart (`notebooks/quickstart.ipynb`) runs top to bottom, so it cannot rot.

The suite replaces its settings cell (tagged `parameters`, as papermill does)
with a tiny budget: no install (the checkout is installed), a one-block
MiniLM on 64 examples, a two-block SmolLM2, a few new tokens.
"""

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")

TINY = """
INSTALL = False
SOURCE = "."
WORK = {work!r}
TRAIN_STEPS = 2
OVERRIDES = {{
    "backbone": {{"keep_layers": 1}},
    "data": {{"train": {{"max_examples": 64}}, "validation": {{"max_examples": 32}}}},
    "task": {{"text_classification": {{"max_seq_length": 16}}}},
    "trainer": {{"batch_size": 16}},
}}
DECODER_OVERRIDES = {{
    "backbone": {{"keep_layers": 1}},
    "data": {{"train": {{"max_examples": 8}}}},
}}
MAX_NEW_TOKENS = 1
"""


def _read():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_stored_without_outputs():
    # Outputs would show one machine's run and make every diff noisy.
    for cell in _read().cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id


@pytest.mark.slow
def test_the_quickstart_notebook_runs_top_to_bottom(tmp_path):
    notebook = _read()
    [settings] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    settings.source = TINY.format(work=str(tmp_path / "runs"))
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": ROOT}},  # configs/ and data/ are read from here
    )
    client.execute()  # a cell that raises fails the test with its traceback
    printed = {
        cell.id: "".join(o.text for o in cell.outputs if o.get("name") == "stdout")
        for cell in notebook.cells
        if cell.cell_type == "code"
    }
    assert "validation accuracy" in printed["train"]
    assert "32 examples" in printed["evaluate"]
    assert "'what a lovely day' -> " in printed["export"]
    assert "ROMEO:" in printed["generate"]
    assert "No TPU in this runtime: skipped." in printed["tpu"]
    assert os.path.isfile(str(tmp_path / "runs" / "export" / "1" / "saved_model.pb"))
