"""The distillation, frozen-cache and backbone tools run end to end on the tiny model."""

import json
import os
import sys

import numpy as np
import pytest
from helpers import fresh_process, tiny

from tftransfer import configs, experiment, export

ROOT = os.path.join(os.path.dirname(__file__), "..")
ENV = {**os.environ, "PYTHONPATH": os.path.abspath(ROOT)}


def _tool(name, *args):
    result = fresh_process.run(
        [sys.executable, os.path.join(ROOT, "tools", name), *args], timeout=600, env=ENV
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_benchmark_exports_serves_each_export_in_turn(tmp_path, tiny_params, sentiment_tsv):
    tiny_params.override({"trainer": {"epochs": 1}})
    experiment.train(tiny_params, str(tmp_path / "run"))
    first = export.export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    second = export.export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    out = tmp_path / "exports.json"
    _tool(
        "benchmark_exports.py",
        f"--exports={first},{second}",
        f"--input={sentiment_tsv}",
        "--format=tsv",
        "--rounds=1",
        "--passes=1",
        "--request_size=8",
        f"--output={out}",
    )
    results = json.loads(out.read_text())
    assert list(results["exports"]) == [first, second]
    assert results["exports"][first]["ratio_to_first"] == 1.0
    assert all(r["texts_per_second"] > 0 for r in results["exports"].values())
    assert results["cpu_flags"] is not None


@pytest.mark.slow
def test_benchmark_frozen_cache_reports_both_modes_at_the_same_accuracy(
    tmp_path, tiny_preset, sentiment_tsv
):
    params = tiny.classification_params(tiny_preset, sentiment_tsv)
    config = tmp_path / "tiny.yaml"
    configs.save(params, str(config))
    out = tmp_path / "frozen.json"
    _tool(
        "benchmark_frozen_cache.py",
        f"--config_file={config}",
        "--params_override=trainer.epochs=2,data.packing=false",
        "--rounds=1",
        f"--output={out}",
    )
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"false", "true"}
    assert rows["true"]["feature_cache_seconds"] > 0 == rows["false"]["feature_cache_seconds"]
    assert rows["true"]["accuracy"] == rows["false"]["accuracy"]


@pytest.mark.slow
def test_save_backbone_writes_the_trained_weights_as_a_preset(tmp_path, tiny_params):
    from tftransfer import backbones, loaded_run

    tiny_params.override({"trainer": {"epochs": 1}})
    experiment.train(tiny_params, str(tmp_path / "run"))
    output = str(tmp_path / "preset")
    _tool("save_backbone.py", f"--model_dir={tmp_path / 'run'}", f"--output={output}")

    def weights(backbone):
        return [np.asarray(w) for w in backbones.Backbone.wrap(backbone).model.weights]

    saved = weights(backbones.load(output)[0])
    trained = weights(loaded_run.LoadedRun(str(tmp_path / "run")).backbone)
    pretrained = weights(backbones.load(tiny_params.backbone.spec)[0])
    assert len(saved) == len(trained) == len(pretrained)
    for a, b in zip(saved, trained):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(saved, pretrained))  # it trained


def test_augmented_copies_mask_words_cut_ngrams_and_repeat_nothing():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import augment_texts

    texts = ["the plot is great fun", "awful  acting ", "the plot is great fun"]
    masked = augment_texts.augment(
        texts, copies=3, mask_prob=1.0, ngram_prob=0.0, max_ngram=5, mask_token="[MASK]"
    )
    # Every word masked; one copy per distinct text length, duplicates dropped.
    assert masked == ["[MASK] [MASK] [MASK] [MASK] [MASK]", "[MASK] [MASK]"]
    cut = augment_texts.augment(
        texts[:1], copies=50, mask_prob=0.0, ngram_prob=1.0, max_ngram=2, mask_token="[MASK]"
    )
    words = texts[0].split()
    assert cut and all(1 <= len(c.split()) <= 2 and c in texts[0] for c in cut)
    assert len(cut) == len(set(cut)) and all(c != texts[0] for c in cut)
    assert len(cut) <= 2 * len(words) - 1  # the distinct 1- and 2-grams
