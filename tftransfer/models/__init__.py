"""Model code the tasks build on, knowing no task.

Heads, packed and windowed classifiers, the fast Llama forward, cached
decoding and sampling, token losses; the tasks in `tftransfer/tasks/` put
them together.
"""
