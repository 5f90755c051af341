"""Serving an exported SavedModel: first call after load, concurrent clients, batching.

Three measurements, each in fresh processes (thread settings and first-call
costs are per process; `--smoke` runs concurrency and batching in one, and
starts its children at once):
  - first call: load the export, optionally replay its TF Serving warmup
    records as the server does, then time the first request of one text and
    the first of 16 (against later calls of the same sizes);
  - concurrency: 1, 4 and 16 client threads in one process each calling the
    signature with requests of 1 and of 16 texts: texts/s and p50/p95/p99
    latency, under TF's intra-/inter-op thread settings
    (`TF_NUM_INTRAOP_THREADS`, `TF_NUM_INTEROP_THREADS`; TF Serving's
    `--tensorflow_intra_op_parallelism`/`--tensorflow_inter_op_parallelism`);
  - batching: 16 clients of one-text requests through
    `tf.nondifferentiable_batch_function`, the same `BatchFunction` op and
    shared batch scheduler TF Serving's `--enable_batching` puts in front of
    a model, for a grid of its parameters; the best becomes
    `batching_parameters.txt` (`batching_parameters`).

Run through `tools/benchmark.py --parts=serving`; this file is also the
child process (`python serving.py '<json spec>'`).
"""

import json
import os
import statistics
import sys
import threading
import time

from benchmarking import common

#: the thread settings compared: (name, environment).
THREAD_SETTINGS = (
    ("TF default (intra = inter = cores)", {}),
    ("intra 1, inter 2", {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"}),
    ("intra 2, inter 1", {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}),
)
#: the batching grid: (num_batch_threads, max_batch_size, batch_timeout_micros).
BATCHING_GRID = tuple(
    (threads, size, timeout)
    for threads in (1, 2)
    for size in (16, 64)
    for timeout in (1000, 5000, 20000)
)


def _signature(export_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    return tf.saved_model.load(export_path)


def _warm_load(export_path):
    """The loaded export after its warmup requests, as a server has it.

    Keep the returned object alive while calling its signatures: they do
    not hold its variables.
    """
    from tftransfer import serving_warmup

    loaded = _signature(export_path)
    serving_warmup.replay(loaded, export_path)
    return loaded


def _request(texts, size, index):
    start = (index * size) % len(texts)
    return [texts[(start + i) % len(texts)] for i in range(size)]


def _clients(call, texts, clients, size, requests):
    """`clients` threads, `requests` calls in all; returns texts/s and latency percentiles."""
    per_client = max(1, requests // clients)
    latencies = [[] for _ in range(clients)]
    errors = []
    barrier = threading.Barrier(clients + 1)

    def client(c):
        barrier.wait()
        for r in range(per_client):
            batch = _request(texts, size, c * per_client + r)
            begin = time.perf_counter()
            try:
                call(batch)
            except Exception as e:  # reported after the run; a client must not hang the barrier
                errors.append(repr(e))
                return
            latencies[c].append(time.perf_counter() - begin)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    flat = [x for c in latencies for x in c]
    return {
        "texts_per_second": len(flat) * size / elapsed,
        "requests": len(flat),
        "latency_ms": common.percentiles_ms(flat),
    }


# -- the child processes --------------------------------------------------------
def first_call(spec):
    """Load, optionally replay the warmup records, then the first calls."""
    import tensorflow as tf

    from tftransfer import serving_warmup

    begin = time.perf_counter()
    loaded = _signature(spec["export"])
    out = {"load_s": time.perf_counter() - begin}
    if spec["warmup"]:
        begin = time.perf_counter()
        out["warmup_requests"] = serving_warmup.replay(loaded, spec["export"])
        out["warmup_s"] = time.perf_counter() - begin
    serve = loaded.signatures["serving_default"]
    texts = spec["texts"]
    for size in (1, 16):
        times = []
        for i in range(6):
            batch = tf.constant(_request(texts, size, i + 7))
            begin = time.perf_counter()
            serve(text=batch)
            times.append(time.perf_counter() - begin)
        out[f"first_ms_batch_{size}"] = 1000 * times[0]
        out[f"later_ms_batch_{size}"] = 1000 * statistics.median(times[1:])
    out["peak_rss_mb"] = common.peak_rss_mb()
    return out


def concurrency(spec):
    """Every (request size, clients) cell of the spec in this process's thread setting."""
    import tensorflow as tf

    loaded = _warm_load(spec["export"])
    serve = loaded.signatures["serving_default"]
    call = lambda batch: serve(text=tf.constant(batch))  # noqa: E731
    out = {}
    for size in spec["sizes"]:
        for clients in spec["clients"]:
            requests = spec["requests"][str(size)]
            call(_request(spec["texts"], size, 0))
            out[f"{size} x {clients}"] = _clients(call, spec["texts"], clients, size, requests)
    out["peak_rss_mb"] = common.peak_rss_mb()
    return out


def batching(spec):
    """One-text requests from many clients, merged by TF's batch scheduler."""
    import tensorflow as tf

    loaded = _warm_load(spec["export"])
    serve = loaded.signatures["serving_default"]
    names = sorted(serve.structured_outputs)
    out = {}
    for threads, size, timeout in spec["grid"]:
        # Traced once: the decorator alone retraces at every eager call. One
        # batcher per setting (its queue is named after the traced function).
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def batched(text, threads=threads, size=size, timeout=timeout):
            @tf.nondifferentiable_batch_function(
                threads, size, timeout, max_enqueued_batches=spec["max_enqueued_batches"]
            )
            def model(text):
                result = serve(text=text)
                return [result[n] for n in names]

            return model(text)

        call = lambda batch, fn=batched: fn(tf.constant(batch))  # noqa: E731
        call(_request(spec["texts"], 1, 0))
        key = f"threads {threads}, max_batch_size {size}, timeout {timeout} us"
        out[key] = _clients(call, spec["texts"], spec["clients"], 1, spec["requests"])
        out[key].update(num_batch_threads=threads, max_batch_size=size, timeout_micros=timeout)
    return out


def smoke(spec):
    """`--smoke`: every measurement in one process, whose start costs more than any of them.

    Only that each runs and reports: after the first load, the second first
    call is not a first one, and the figures mean nothing.
    """
    return {
        "without": first_call({**spec, "warmup": False}),
        "with warmup records": first_call({**spec, "warmup": True}),
        "concurrency": concurrency({**spec, **spec["concurrency"]}),
        "batching": batching({**spec, **spec["batching"]}),
    }


CHILDREN = {
    "first_call": first_call,
    "concurrency": concurrency,
    "batching": batching,
    "smoke": smoke,
}


# -- the parent -----------------------------------------------------------------
def measure(export_path, texts, smoke=False, rounds=1):
    """All three measurements on `export_path`, each side in fresh processes.

    Returns a JSON-able dict: `first_call` (with and without warmup, median
    over `rounds` alternating processes), `concurrency` per thread setting,
    `batching` per grid point, and the chosen `batching_parameters`.
    """
    texts = list(texts)[:512]
    run = lambda mode, env=None, **spec: common.run_child(  # noqa: E731
        __file__, {"mode": mode, "export": export_path, "texts": texts, **spec}, env
    )
    cells = dict(sizes=[1, 16], clients=[1, 4, 16])
    cells["requests"] = {"1": 16, "16": 8} if smoke else {"1": 192, "16": 64}
    batched = dict(
        grid=BATCHING_GRID[:2] if smoke else BATCHING_GRID,
        clients=16,
        requests=32 if smoke else 384,
        max_enqueued_batches=64,
    )
    if smoke:
        name, env = THREAD_SETTINGS[0]
        smoked = run("smoke", env, concurrency=cells, batching=batched)
        first = {k: [smoked[k]] for k in ("with warmup records", "without")}
    else:
        first = {"with warmup records": [], "without": []}
        for _ in range(rounds):
            first["without"].append(run("first_call", warmup=False))
            first["with warmup records"].append(run("first_call", warmup=True))
    result = {
        "first_call": {
            k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in first.items()
        }
    }
    if smoke:
        result["concurrency"] = {name: smoked["concurrency"]}
        result["batching"] = smoked["batching"]
    else:
        result["concurrency"] = {
            name: run("concurrency", env, **cells) for name, env in THREAD_SETTINGS
        }
        result["batching"] = run("batching", **batched)
    result["batching_parameters"] = choose_batching(result["batching"], clients=16)
    return result


def choose_batching(grid_results, clients):
    """The grid point with the most texts/s whose p99 is within 1.5x of the lowest p99.

    Throughput first (what batching is for), but not at any tail latency. The
    queue holds as many batches as there were clients, so the measured load
    is never refused.
    """
    best_p99 = min(r["latency_ms"]["p99"] for r in grid_results.values())
    allowed = [r for r in grid_results.values() if r["latency_ms"]["p99"] <= 1.5 * best_p99]
    chosen = max(allowed, key=lambda r: r["texts_per_second"])
    return {
        "max_batch_size": chosen["max_batch_size"],
        "batch_timeout_micros": chosen["timeout_micros"],
        "num_batch_threads": chosen["num_batch_threads"],
        "max_enqueued_batches": clients,
    }


def batching_parameters_text(params, command, machine):
    """TF Serving's `--batching_parameters_file` text proto, with where it came from."""
    lines = [
        "# TF Serving batching for a tftransfer export (tensorflow_model_server",
        "#   --enable_batching --batching_parameters_file=<this file>).",
        f"# Measured on {machine} by:",
        f"#   {command}",
        "# (16 concurrent clients of one-text requests; the setting with the most",
        "# texts/s whose p99 latency is within 1.5x of the lowest; see BENCHMARKS.md).",
    ]
    lines += [f"{k} {{ value: {v} }}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def print_table(result):
    print("\nfirst call after loading the export (ms)")
    for name, m in result["first_call"].items():
        print(
            f"  {name:22s} batch 1: first {m['first_ms_batch_1']:7.1f}, later "
            f"{m['later_ms_batch_1']:6.1f}; batch 16: first {m['first_ms_batch_16']:7.1f}, "
            f"later {m['later_ms_batch_16']:6.1f}; load {m['load_s']:.1f} s"
            + (f", warmup {m['warmup_s']:.1f} s" if "warmup_s" in m else "")
        )
    print("\nconcurrent clients: texts/s, latency p50/p95/p99 ms (request size x clients)")
    for name, cells in result["concurrency"].items():
        print(f"  {name} (peak RSS {cells['peak_rss_mb']:.0f} MB)")
        for cell, m in cells.items():
            if cell == "peak_rss_mb":
                continue
            lat = m["latency_ms"]
            print(
                f"    {cell:8s} {m['texts_per_second']:7.1f}  "
                f"{lat['p50']:7.1f} / {lat['p95']:7.1f} / {lat['p99']:7.1f}"
            )
    print("\nserver-side batching, 16 clients of 1 text: texts/s, p50/p95/p99 ms")
    for name, m in result["batching"].items():
        lat = m["latency_ms"]
        print(
            f"  {name:48s} {m['texts_per_second']:7.1f}  "
            f"{lat['p50']:7.1f} / {lat['p95']:7.1f} / {lat['p99']:7.1f}"
        )
    print(f"chosen: {result['batching_parameters']}")


if __name__ == "__main__":
    child_spec = json.loads(sys.argv[1])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(json.dumps(CHILDREN[child_spec["mode"]](child_spec)))
