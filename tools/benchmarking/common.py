"""Helpers shared by the benchmark parts: percentiles, peak RSS, child processes."""

import json
import os
import subprocess
import sys

import numpy as np


def percentiles_ms(seconds, points=(50, 95, 99)):
    """`{"p50": ms, ...}` of a list of durations in seconds."""
    return {f"p{p}": 1000 * float(np.percentile(seconds, p)) for p in points}


def cpu_flags():
    """The CPU's flags that decide our speed (AVX2, AVX-512, bf16 units), from /proc/cpuinfo."""
    from tftransfer.training import auto_precision  # imports no TensorFlow

    found = auto_precision.cpu_flags()
    return [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in found]


def cpu_autocast(bf16):
    """torch's CPU bfloat16 autocast (what `TrainingArguments(bf16=True)` runs), or no change."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def peak_rss_mb():
    """This process's peak resident set size so far, in MB.

    `VmHWM` (via `peak_memory`), not `ru_maxrss`: Linux carries ru_maxrss
    across fork and exec, so a child of a 2 GB parent would report 2 GB.
    """
    from tftransfer.training import peak_memory

    return peak_memory.current_peak_mb()


def run_child(module_file, spec, env=None):
    """Runs `python <module_file> <spec as JSON>`; returns the JSON its last line prints.

    Each measurement that needs a clean process (first-call latency, thread
    settings, peak memory) runs this way.
    """
    return run_child_argv([module_file, json.dumps(spec)], env)


def run_child_argv(argv, env=None):
    """Runs `python <argv...>` with the repository importable; returns its last line's JSON."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.path.join(root, "tools"), child_env.get("PYTHONPATH", "")) if p
    )
    result = subprocess.run(
        [sys.executable] + list(argv),
        capture_output=True,
        text=True,
        env=child_env,
    )
    if result.returncode != 0:
        shown = " ".join([os.path.basename(argv[0])] + list(argv[1:]))
        raise RuntimeError(f"{shown} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
