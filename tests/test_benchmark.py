"""The side-by-side benchmark runs end to end on a tiny model (`--smoke`)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_benchmark_smoke_runs_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "benchmark.py"),
            "--smoke",
            "--rounds=1",
            "--latency_calls=5",
            "--max_seq_length=24",
            "--batch_size=8",
            "--eval_batch_size=16",
            f"--output={out}",
        ],
        check=True,
        capture_output=True,
        text=True,
        # The checkout under test, whatever is installed.
        env={**os.environ, "PYTHONPATH": os.path.abspath(ROOT)},
    )
    results = json.loads(out.read_text())
    training = results["median"]["training"]
    assert set(training) == {
        "tftransfer fixed",
        "tftransfer fixed + XLA",
        "tftransfer buckets",
        "tftransfer buckets + XLA",
        "tftransfer packed",
        "tftransfer packed + XLA",
        "tftransfer buckets bf16",
        "HF Trainer (torch)",
    }
    assert all(m["examples_per_second"] > 0 for m in training.values())
    # Buckets compute less padding than padding every batch to the maximum,
    # and packing less than buckets.
    padding = {k: m.get("padding_fraction") for k, m in training.items()}
    assert padding["tftransfer packed"] < padding["tftransfer buckets"]
    assert padding["tftransfer buckets"] < padding["tftransfer fixed"]
    assert set(training["tftransfer packed"]["optimizer_update_ms"]) == {"all", "token_embedding"}
    inference = results["median"]["inference"]
    assert set(inference) == {"tftransfer SavedModel", "HF torch"}
    assert results["matmul_peak_gflops"] > 0
    assert results["median"]["tokenization"]["examples_per_second"] > 0
