"""Parts of `tools/benchmark.py`, one measurement per module."""
