"""`tftransfer compare`: the grid, nested subsets, resuming, and the three reports."""

import json
import logging
import os

import pytest

from tftransfer import compare, experiment


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compare_runs_every_cell_once_and_writes_the_reports(tiny_params, tmp_path, monkeypatch):
    tiny_params.override({"trainer": {"epochs": 1, "batch_size": 8}})
    out = str(tmp_path / "cmp")

    def grid():
        return compare.Comparison(
            tiny_params,
            out,
            ["frozen", "scratch"],
            ["16", "all"],
            seeds=2,
            strategy_overrides={"scratch": "trainer.learning_rate=1e-2"},
            cell_processes=False,  # counts experiment.train calls below
        )

    summary = grid().run()
    assert summary["sizes"] == [16, 56]
    assert len(summary["cells"]) == 2 * 2 * 2
    for name in ("compare.json", "compare.md", "learning_curves.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert set(summary["gain_over_scratch"]) == {"frozen"}
    table = open(os.path.join(out, "compare.md")).read()
    assert "| frozen |" in table and "n = 16" in table and "±" in table

    def cell(name):
        with open(os.path.join(out, "cells", name, "train_subset.json")) as f:
            return json.load(f)["train_indices"]

    small, full = cell("frozen-n16-seed7"), cell("frozen-n56-seed7")
    assert small == full[:16] and sorted(full) == list(range(56))
    with open(os.path.join(out, "cells", "scratch-n16-seed8", "params.yaml")) as f:
        text = f.read()
    assert "strategy: scratch" in text and "learning_rate: 0.01" in text and "seed: 8" in text

    # A rerun trains nothing; a cell whose result is missing (interrupted) is redone alone.
    calls = []
    real = experiment.train
    monkeypatch.setattr(experiment, "train", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    grid().run()
    assert calls == []
    os.remove(os.path.join(out, "cells", "frozen-n56-seed8", "result.json"))
    again = grid().run()
    assert [os.path.basename(c) for c in calls] == ["frozen-n56-seed8"]
    assert again["table"] == summary["table"]


def test_min_steps_lengthens_only_the_cells_with_too_few_updates(tiny_params, tmp_path):
    tiny_params.override({"trainer": {"epochs": 3, "batch_size": 8}})
    grid = compare.Comparison(tiny_params, str(tmp_path), ["full"], ["16", "all"], min_steps=20)
    small = grid.cell_params(compare.Cell("full", 16, 42)).trainer
    large = grid.cell_params(compare.Cell("full", 56, 42)).trainer
    assert small.train_steps == 20  # 3 epochs x 2 batches would be 6 updates
    assert small.eval_every == 20  # not after every 2-step "epoch"
    assert large.train_steps == 0 and large.epochs == 3  # 21 updates: left as configured


@pytest.mark.slow
def test_cells_in_their_own_processes_skip_a_busy_cell_and_match_in_process_training(
    tiny_params, tmp_path, capfd, caplog
):
    from tftransfer.training import run_lock

    tiny_params.override({"trainer": {"epochs": 1, "batch_size": 8}})
    out = str(tmp_path / "cmp")
    grid = compare.Comparison(tiny_params, out, ["frozen"], ["16"], seeds=2)
    assert grid.cell_processes  # the default: memory flat across a long grid
    busy = os.path.join(out, "cells", "frozen-n16-seed7")
    with run_lock.run_lock(busy), caplog.at_level(logging.INFO, logger="absl"):
        assert grid.run() is None  # no reports while a cell is unfinished
    done = [os.path.exists(grid._result_path(c)) for c in grid.cells]
    assert done == [False, True]  # seed 7 left to its worker, seed 8 trained
    assert not os.path.exists(os.path.join(out, "compare.json"))
    # The cell's process logs at this process's level (INFO here), not Python's default.
    assert "Training " in capfd.readouterr().err

    # The same cell trained in this process gives the same result: the
    # cell's process got the whole config and the same examples.
    here = compare.Comparison(
        tiny_params, str(tmp_path / "here"), ["frozen"], ["16"], seeds=2, cell_processes=False
    )
    child = json.load(open(grid._result_path(grid.cells[1])))
    assert here.run_cell(here.cells[1])["metrics"] == child["metrics"]


def test_every_cell_knows_every_label_of_the_full_training_set(tiny_params, tmp_path):
    tiny_params.override({"trainer": {"epochs": 1, "batch_size": 8}})
    grid = compare.Comparison(tiny_params, str(tmp_path), ["frozen"], ["1"], seeds=1)
    labels = sorted(set(grid.train_examples.labels))
    first = compare.subset(grid.train_examples, grid.order[:1]).labels
    assert len(set(first)) < len(labels)  # the subset alone would miss a label
    assert grid.cell_params(grid.cells[0]).task.get().labels == labels


@pytest.mark.slow
def test_pretraining_then_fine_tuning_from_one_command(tiny_params, tiny_preset, tmp_path):
    from tftransfer import configs

    text = tmp_path / "domain.txt"
    text.write_text(" ".join(["the movie was great fun and i love it"] * 20))
    pretrain = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"type": "masked_lm", "masked_lm": {"max_seq_length": 16}},
            "data": {"train": {"path": str(text)}},
            "trainer": {"batch_size": 4, "epochs": 1},
        },
    )
    tiny_params.override({"trainer": {"epochs": 1}})
    model_dir = str(tmp_path / "run")
    preset = experiment.pretrain_then(pretrain, tiny_params, model_dir)
    assert preset == os.path.join(model_dir, "pretrain", "backbone")
    assert tiny_params.backbone.spec == preset
    metrics = experiment.train(tiny_params, model_dir)
    assert metrics["examples"] == 56
    assert configs.from_model_dir(model_dir).backbone.spec == preset
