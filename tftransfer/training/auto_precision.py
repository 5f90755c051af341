"""`runtime.mixed_precision: auto`: bfloat16 where the hardware has bf16 units.

bfloat16 pays where the device multiplies in it natively: TPUs, NVIDIA GPUs
of compute capability 8.0 (Ampere) and later, and CPUs with AVX512_BF16 or
AMX (on an AVX512_BF16 EPYC MiniLM trained 1.23× and served 1.62× faster,
to the same accuracy; BENCHMARKS.md). Elsewhere TensorFlow emulates it and
training is 2–3× slower than float32, so `auto` picks float32 there.

Setting the environment variable `TFTRANSFER_AUTO_PRECISION` (to any
`runtime.mixed_precision` value but `auto`) makes `auto` pick that value on
every machine: for a test suite, or a cluster of mixed machines that should
compute alike. An explicit `runtime.mixed_precision` wins over both.

Example:

>>> from tftransfer.training import auto_precision
>>> auto_precision.choose({"avx2", "avx512f", "avx512_bf16"}, gpu_capabilities=[])
('bfloat16', 'auto: CPU flags avx512_bf16')
>>> auto_precision.choose({"avx2", "fma"}, gpu_capabilities=[])[0]
'float32'
>>> auto_precision.choose(set(), gpu_capabilities=[(8, 6), (7, 5)])
('float32', 'auto: GPU compute capability 7.5 (bfloat16 needs 8.0)')
"""

import os

from tftransfer.config_checks import ConfigError

AUTO = "auto"
#: names a `runtime.mixed_precision` value that `auto` resolves to everywhere.
ENV = "TFTRANSFER_AUTO_PRECISION"
#: /proc/cpuinfo flags of bf16 multiply units (AVX512_BF16; AMX tiles).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: the first NVIDIA compute capability with bf16 tensor cores (Ampere).
BF16_GPU_CAPABILITY = (8, 0)


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (empty where `path` cannot be read: not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def gpu_capabilities(strategy):
    """`(major, minor)` compute capability of each GPU `strategy` runs on."""
    # TensorFlow here, not at the top: benchmark tools read `cpu_flags` in
    # processes that must not start TensorFlow.
    import tensorflow as tf

    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: TF places ops on a GPU if there is one
        devices = [d.name for d in tf.config.list_logical_devices()]
    if not any("GPU" in d.upper() for d in devices):
        return []
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability) if capability else (0, 0))
    return found


def choose(flags, gpu_capabilities, tpu=False):
    """`(value, why)`: what `auto` means on this hardware (no environment variable).

    Args:
        flags: the CPU's feature flags (`cpu_flags()`).
        gpu_capabilities: those of the GPUs the run uses (empty: none).
        tpu: the run is on TPUs.
    """
    if tpu:
        return "bfloat16", "auto: TPU"
    if gpu_capabilities:
        lowest = min(gpu_capabilities)
        named = f"GPU compute capability {lowest[0]}.{lowest[1]}"
        if lowest >= BF16_GPU_CAPABILITY:
            return "bfloat16", f"auto: {named}"
        return "float32", f"auto: {named} (bfloat16 needs 8.0)"
    units = sorted(set(flags) & set(BF16_CPU_FLAGS))
    if units:
        return "bfloat16", "auto: CPU flags " + " ".join(units)
    return "float32", "auto: the CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag)"


def resolve(value, strategy=None, choices=()):
    """`(value, why)` for a `runtime.mixed_precision` value: `auto` decided here.

    Args:
        value: the configured value.
        strategy: the `tf.distribute.Strategy` the run uses (default: the
            current one).
        choices: the accepted values, to check `TFTRANSFER_AUTO_PRECISION`.
    """
    if value != AUTO:
        return value or "float32", "set"
    pinned = os.environ.get(ENV)
    if pinned:
        if (choices and pinned not in choices) or pinned == AUTO:
            raise ConfigError(
                f"${ENV}={pinned!r}: must be one of "
                + ", ".join(c for c in choices if c and c != AUTO)
            )
        return pinned, f"auto: ${ENV}"
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    return choose(cpu_flags(), [] if tpu else gpu_capabilities(strategy), tpu=tpu)
