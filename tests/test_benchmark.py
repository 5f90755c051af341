"""The side-by-side benchmark runs end to end on a tiny model (`--smoke`)."""

import json
import os
import re
import sys

import pytest
from helpers import fresh_process

pytest.importorskip("transformers")
pytest.importorskip("torch")

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_benchmark_smoke_runs_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    fresh_process.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "benchmark.py"),
            "--smoke",
            "--rounds=1",
            "--latency_calls=5",
            "--max_seq_length=24",
            "--batch_size=8",
            "--eval_batch_size=16",
            "--ner_examples=64",
            "--ner_eval_examples=32",
            "--qa_windows=32",
            "--qa_eval_examples=16",
            f"--output={out}",
        ],
        check=True,
        # Every part; five child processes.
        timeout=600,
        # The checkout under test, whatever is installed.
        env={**os.environ, "PYTHONPATH": os.path.abspath(ROOT)},
    )
    results = json.loads(out.read_text())
    # --smoke runs one tftransfer and the HF contender of each part
    # (benchmark.SMOKE_CONTENDERS); the other tftransfer contenders call the
    # same functions with other batch shapes, XLA or bfloat16.
    training = results["median"]["training"]
    assert set(training) == {"tftransfer packed", "HF Trainer (torch)"}
    assert all(m["examples_per_second"] > 0 for m in training.values())
    assert 0 < training["tftransfer packed"]["padding_fraction"] < 1
    assert set(training["tftransfer packed"]["optimizer_update_ms"]) == {"all", "token_embedding"}
    inference = results["median"]["inference"]
    assert set(inference) == {"tftransfer SavedModel", "HF torch"}
    assert results["matmul_peak_gflops"] > 0
    assert results["median"]["tokenization"]["examples_per_second"] > 0

    # NER and QA, each side by side with HF, training and serving.
    for task in ("ner", "qa"):
        assert set(results["median"][f"{task} training"]) == {"tftransfer", "HF Trainer (torch)"}
        assert set(results["median"][f"{task} inference"]) == {"tftransfer SavedModel", "HF torch"}
        assert results["median"][f"{task} training"]["tftransfer"]["padding_fraction"] < 1

    # Peak memory, measured alone in its own process.
    assert set(results["peak_rss_mb"]) == {"training: tftransfer packed"}
    assert all(mb > 100 for mb in results["peak_rss_mb"].values())

    serving = results["serving"]
    first = serving["first_call"]
    assert set(first) == {"with warmup records", "without"}
    assert first["with warmup records"]["warmup_requests"] == 3
    assert "warmup_requests" not in first["without"]
    cells = serving["concurrency"]["TF default (intra = inter = cores)"]
    assert set(cells) == {f"{size} x {n}" for size in (1, 16) for n in (1, 4, 16)} | {"peak_rss_mb"}
    for name, cell in cells.items():
        if name != "peak_rss_mb":
            lat = cell["latency_ms"]
            assert cell["texts_per_second"] > 0 and lat["p50"] <= lat["p95"] <= lat["p99"]
    # The shipped TF Serving batching file's format: `name { value: N }` lines.
    text = (tmp_path / "batching_parameters.txt").read_text()
    fields = dict(re.findall(r"^(\w+) \{ value: (\d+) \}$", text, re.M))
    assert set(fields) == {
        "max_batch_size",
        "batch_timeout_micros",
        "num_batch_threads",
        "max_enqueued_batches",
    }
    assert {k: int(v) for k, v in fields.items()} == serving["batching_parameters"]
