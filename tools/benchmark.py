"""Side-by-side speed: tftransfer vs Hugging Face on the same checkpoint and examples.

One run measures, alternating the contenders round by round so that drifts
in machine load hit both alike:
  (a) training examples/s: tftransfer with fixed padding and with length
      buckets, XLA off and on, vs Hugging Face `Trainer` on torch (dynamic
      padding and `group_by_length`), same batch size, AdamW, learning rate
      and maximum length;
  (b) inference examples/s and p50/p95 latency at batch 1 and at
      `--eval_batch_size`: the exported SavedModel (raw strings in) vs HF
      torch in eval mode (its tokenizer included);
  (c) achieved model FLOP/s (6 * non-embedding parameters * tokens plus the
      attention term), counted on real and on padded tokens, against the
      fp32 matmul peak measured here first;
  (d) tokenization throughput of the tf.data pipeline alone.
It prints a table and writes JSON (medians and every round).

The HF side needs the `bench` extra (transformers and torch). `--smoke` runs
everything on a tiny random BERT written in Hugging Face format (so both
sides load the very same weights) and a few generated sentences.

Usage:
    python tools/benchmark.py --data=$DATA/sst2/train.tsv \
        --eval_data=$DATA/sst2/dev.tsv --output=runs/benchmark.json
    python tools/benchmark.py --smoke --output=/tmp/bench.json
"""

import collections
import functools
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("data", "../shared/data/sst2/train.tsv", "Training file (TSV/CSV/JSONL).")
flags.DEFINE_string("eval_data", "../shared/data/sst2/dev.tsv", "Inference file.")
flags.DEFINE_string("text_column", "sentence", "Text column.")
flags.DEFINE_string("label_column", "label", "Label column.")
flags.DEFINE_enum("quoting", "none", ["minimal", "none"], "CSV quoting of both files.")
flags.DEFINE_string("backbone", "default", "A Hugging Face-format folder, or `default`.")
flags.DEFINE_integer("num_examples", 2048, "Training examples (the first ones of --data).")
flags.DEFINE_integer("num_eval_examples", 872, "Inference examples (first of --eval_data).")
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 64, "Inference batch size.")
flags.DEFINE_integer("max_seq_length", 64, "Maximum tokens per example, both sides.")
flags.DEFINE_float("learning_rate", 5e-5, "AdamW learning rate, both sides.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds; medians are reported.")
flags.DEFINE_integer("latency_calls", 100, "Calls per latency measurement.")
flags.DEFINE_bool("skip_hf", False, "Measure tftransfer only.")
flags.DEFINE_list("parts", ["training", "inference", "tokenization"], "Which measurements to run.")
flags.DEFINE_list(
    "contenders", [], "Only training contenders whose names contain one of these (empty: all)."
)
flags.DEFINE_bool("smoke", False, "Tiny random model and data: checks the script runs.")
flags.DEFINE_string("output", "runs/benchmark.json", "Where to write the JSON results.")
FLAGS = flags.FLAGS

SMOKE_WORDS = "the a movie film was great bad plot acting fun boring not very good awful".split()


# -- inputs ------------------------------------------------------------------
def smoke_setup(root):
    """Writes a tiny random BERT in HF format and small TSV files; returns paths."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SMOKE_WORDS
    model_dir = os.path.join(root, "tiny_hf")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(model_dir, safe_serialization=True)
    transformers.BertTokenizerFast(os.path.join(model_dir, "vocab.txt")).save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    paths = []
    for name, n in (("train.tsv", 96), ("dev.tsv", 40)):
        path = os.path.join(root, name)
        with open(path, "w") as f:
            f.write("sentence\tlabel\n")
            for _ in range(n):
                words = rng.choice(SMOKE_WORDS, size=rng.integers(2, 20))
                f.write(" ".join(words) + f"\t{rng.integers(0, 2)}\n")
        paths.append(path)
    return model_dir, paths[0], paths[1]


def read_texts(path, limit):
    from tftransfer import configs
    from tftransfer.data import readers

    spec = configs.InputConfig(
        path=path,
        text_column=FLAGS.text_column,
        label_column=FLAGS.label_column,
        quoting=FLAGS.quoting,
        max_examples=limit,
    )
    return readers.read(spec)


# -- (c) the machine's matmul peak -------------------------------------------
def matmul_peak():
    """Best fp32 GFLOP/s of MiniLM-shaped matmuls ([tokens, 384] x [384, 1536])."""
    import tensorflow as tf

    best = 0.0
    for m, k, n in ((2048, 384, 1536), (2048, 1536, 384), (2048, 384, 384)):
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        step = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
        step(a, b).numpy()
        iterations = 30
        start = time.perf_counter()
        for _ in range(iterations):
            step(a, b).numpy()
        elapsed = time.perf_counter() - start
        best = max(best, 2 * m * k * n * iterations / elapsed / 1e9)
    return best


def training_flops(backbone, lengths, widths):
    """Model FLOPs of one training pass over examples of `lengths` tokens.

    6 * N * T for the non-embedding weights (forward 2, backward 4) plus the
    attention products, 12 * layers * hidden * T^2 (QK^T and AV, forward
    and backward), on real tokens and on the padded widths actually computed.
    """
    embedding = sum(
        int(np.prod(w.shape))
        for w in backbone.weights
        if "embedding" in w.path and "layer_norm" not in w.path
    )
    non_embedding = backbone.count_params() - embedding
    layers, hidden = backbone.num_layers, backbone.hidden_dim

    def flops(t):
        t = np.asarray(t, np.float64)
        return float(np.sum(6 * non_embedding * t + 12 * layers * hidden * t * t))

    return flops(lengths), flops(widths), non_embedding


# -- (a) training ------------------------------------------------------------
def tftransfer_training(spec, examples, buckets, jit_compile, packing=False, precision=""):
    """Examples/s of tftransfer's training step over `examples`, after a warm-up pass."""
    import keras

    from tftransfer import configs, experiment
    from tftransfer.data import packing as packing_lib
    from tftransfer.training import trainer

    params = configs.load(
        [],
        {
            "backbone": {"spec": spec},
            "task": {"text_classification": {"max_seq_length": FLAGS.max_seq_length}},
            "data": {
                "bucket_boundaries": buckets,
                "packing": packing,
                "shuffle_buffer_size": len(examples),
            },
            "trainer": {
                "batch_size": FLAGS.batch_size,
                "learning_rate": FLAGS.learning_rate,
                "jit_compile": jit_compile,
                "clipnorm": 0.0,
                "warmup_ratio": 0.0,
                "seed": 0,
            },
            "runtime": {"mixed_precision": precision},
        },
    )
    keras.utils.set_random_seed(0)
    steps = len(examples) // FLAGS.batch_size
    run = experiment.build(params, train_examples=examples, total_steps=2 * steps)
    model, optimizer = run.model, run.optimizer
    with tempfile.TemporaryDirectory() as tmp:
        loop = trainer.Trainer(
            model,
            run.task.loss,
            optimizer,
            run.strategy,
            tmp,
            params.trainer,
            FLAGS.batch_size,
            run.train_model,
        )
        batches = list(run.train_dataset().take(steps))  # tokenized and bucketed before timing
        for features, labels in batches:  # warm-up: one trace (and compile) per shape
            loop._train_step(features, labels)
        per_shape = collections.defaultdict(list)
        start = time.perf_counter()
        for features, labels in batches:
            begin = time.perf_counter()
            float(loop._train_step(features, labels))
            shape = "x".join(map(str, features["padding_mask"].shape))
            per_shape[shape].append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - start
        update_ms = optimizer_update_ms(model, optimizer)
    lengths = np.concatenate([packing_lib.example_lengths(f) for f, _ in batches])
    # The computed rows: one per example, or the packed rows.
    widths = np.concatenate([np.full(*f["padding_mask"].shape) for f, _ in batches])
    real, padded, _ = training_flops(run.backbone.model, lengths, widths)
    return {
        "examples_per_second": steps * FLAGS.batch_size / elapsed,
        "model_gflops_real": real / elapsed / 1e9,
        "model_gflops_padded": padded / elapsed / 1e9,
        "padding_fraction": 1 - lengths.sum() / widths.sum(),
        "optimizer_update_ms": update_ms,
        "step_ms_by_shape": {
            k: {"median": 1000 * statistics.median(v), "steps": len(v)}
            for k, v in sorted(per_shape.items())
        },
    }


def optimizer_update_ms(model, optimizer):
    """Median time of the optimizer's update alone (all weights; token embedding alone).

    The gradients are random; what is timed is AdamW's work per step.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    embedding = [v for v in variables if "token_embedding" in v.path]
    out = {}
    for name, subset in (("all", variables), ("token_embedding", embedding)):
        grads = [tf.random.normal(v.shape) * 1e-6 for v in subset]
        apply = tf.function(functools.partial(_apply_gradients, optimizer, subset))
        apply(grads)
        times = []
        for _ in range(10):
            begin = time.perf_counter()
            apply(grads)
            float(optimizer.iterations.numpy())
            times.append(time.perf_counter() - begin)
        out[name] = 1000 * statistics.median(times)
    return out


def _apply_gradients(optimizer, variables, grads):
    optimizer.apply(grads, variables)


def hf_training(path, examples):
    """Examples/s of HF `Trainer` (dynamic padding, group_by_length), after one warm-up step."""
    import torch
    import transformers

    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    labels = sorted(set(examples.labels))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels)
    )
    encoded = tokenizer(list(examples.texts), truncation=True, max_length=FLAGS.max_seq_length)
    rows = [
        {"input_ids": ids, "attention_mask": mask, "labels": labels.index(label)}
        for ids, mask, label in zip(
            encoded["input_ids"], encoded["attention_mask"], examples.labels
        )
    ]
    times = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter())

    # transformers 5 renamed `group_by_length=True`.
    grouping = {"group_by_length": True}
    if "train_sampling_strategy" in transformers.TrainingArguments.__dataclass_fields__:
        grouping = {"train_sampling_strategy": "group_by_length"}
    with tempfile.TemporaryDirectory() as tmp:
        args = transformers.TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate,
            num_train_epochs=1,
            **grouping,
            optim="adamw_torch",
            max_grad_norm=0.0,
            lr_scheduler_type="constant",
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            dataloader_drop_last=True,
            use_cpu=True,
            disable_tqdm=True,
        )
        transformers.Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=transformers.DataCollatorWithPadding(tokenizer),
            callbacks=[Clock()],
        ).train()
    steps = len(times) - 1  # timed from the end of the first step
    return {"examples_per_second": steps * FLAGS.batch_size / (times[-1] - times[0])}


# -- (b) inference -----------------------------------------------------------
def _latencies(call, batches):
    out = []
    for batch in batches:
        start = time.perf_counter()
        call(batch)
        out.append(time.perf_counter() - start)
    return out


def _inference_record(call, texts):
    call(texts[: FLAGS.eval_batch_size])  # warm-up
    n = FLAGS.eval_batch_size
    batches = [texts[i : i + n] for i in range(0, len(texts), n)]
    for batch in batches:  # warm-up: every batch shape once
        call(batch)
    start = time.perf_counter()
    for batch in batches:
        call(batch)
    throughput = len(texts) / (time.perf_counter() - start)
    singles = _latencies(call, [[t] for t in texts[: FLAGS.latency_calls]])
    fulls = _latencies(call, batches[: max(1, FLAGS.latency_calls // 10)])
    return {
        "examples_per_second": throughput,
        "latency_ms_batch_1": {
            "p50": 1000 * float(np.percentile(singles, 50)),
            "p95": 1000 * float(np.percentile(singles, 95)),
        },
        f"latency_ms_batch_{n}": {
            "p50": 1000 * float(np.percentile(fulls, 50)),
            "p95": 1000 * float(np.percentile(fulls, 95)),
        },
    }


def tftransfer_inference(export_path, texts):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the SavedModel uses)

    serve = tf.saved_model.load(export_path).signatures["serving_default"]
    return _inference_record(lambda batch: serve(text=tf.constant(batch)), texts)


def hf_inference(path, texts, num_labels):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels
    ).eval()

    def call(batch):
        with torch.inference_mode():
            inputs = tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=FLAGS.max_seq_length,
                return_tensors="pt",
            )
            return torch.softmax(model(**inputs).logits, -1).numpy()

    return _inference_record(call, texts)


def export_untrained(spec, examples, root):
    """A SavedModel of the classifier (its head untrained: speed only)."""
    from tftransfer import configs, experiment, export

    params = configs.load(
        [],
        {
            "backbone": {"spec": spec},
            "task": {"text_classification": {"max_seq_length": FLAGS.max_seq_length}},
        },
    )
    run = experiment.build(params, train_examples=examples)
    return export.save(run.task, run.model, run.backbone, os.path.join(root, "export"))


# -- (d) tokenization ----------------------------------------------------------
def tokenization(spec, examples):
    from tftransfer import configs, experiment
    from tftransfer.data import pipeline

    params = configs.load(
        [],
        {
            "backbone": {"spec": spec, "random_init": True},
            "task": {"text_classification": {"max_seq_length": FLAGS.max_seq_length}},
            "data": {"cache": False},
        },
    )
    _, task = experiment.prepare_task(params, examples)
    rows = pipeline.encoded_dataset(task, examples, params.data)
    for _ in rows.take(1):  # builds the pipeline's functions
        pass
    start = time.perf_counter()
    count = sum(1 for _ in rows)
    return {"examples_per_second": count / (time.perf_counter() - start)}


# -- the run -------------------------------------------------------------------
def _median(records):
    """Per-key medians over rounds, into nested dicts (keys missing from a round skipped)."""
    out = {}
    for k, v in records[0].items():
        values = [r[k] for r in records if k in r]
        if isinstance(v, dict):
            out[k] = _median(values)
        elif isinstance(v, (int, float)):
            out[k] = statistics.median(values)
    return out


def main(argv):
    del argv
    import tensorflow as tf

    from tftransfer import backbones

    root = tempfile.mkdtemp(prefix="tftransfer-bench-")
    spec, train_path, eval_path = FLAGS.backbone, FLAGS.data, FLAGS.eval_data
    if FLAGS.smoke:
        spec, train_path, eval_path = smoke_setup(root)
    hf_path = backbones.default_path() if spec == "default" else spec
    examples = read_texts(train_path, FLAGS.num_examples)
    texts = list(read_texts(eval_path, FLAGS.num_eval_examples).texts)

    results = {
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
        "settings": {
            k: FLAGS[k].value
            for k in (
                "backbone",
                "num_examples",
                "num_eval_examples",
                "batch_size",
                "eval_batch_size",
                "max_seq_length",
                "learning_rate",
                "rounds",
                "smoke",
            )
        },
        "matmul_peak_gflops": matmul_peak(),
        "rounds": [],
    }
    if not FLAGS.skip_hf:
        import torch

        results["machine"]["torch"] = torch.__version__
        results["machine"]["torch_threads"] = torch.get_num_threads()
    export_path = export_untrained(spec, examples, root)
    buckets = [16, 32, 48] if FLAGS.max_seq_length > 48 else [8]
    contenders = {
        "tftransfer fixed": lambda: tftransfer_training(spec, examples, [], False),
        "tftransfer fixed + XLA": lambda: tftransfer_training(spec, examples, [], True),
        "tftransfer buckets": lambda: tftransfer_training(spec, examples, buckets, False),
        "tftransfer buckets + XLA": lambda: tftransfer_training(spec, examples, buckets, True),
        "tftransfer packed": lambda: tftransfer_training(spec, examples, [], False, True),
        "tftransfer packed + XLA": lambda: tftransfer_training(spec, examples, [], True, True),
        # Fast only where the CPU has AVX512_BF16 or AMX (emulated elsewhere).
        "tftransfer buckets bf16": lambda: tftransfer_training(
            spec, examples, buckets, False, precision="bfloat16"
        ),
    }
    if not FLAGS.skip_hf:
        contenders["HF Trainer (torch)"] = lambda: hf_training(hf_path, examples)
    if FLAGS.contenders:
        contenders = {k: v for k, v in contenders.items() if any(c in k for c in FLAGS.contenders)}
    inference = {"tftransfer SavedModel": lambda: tftransfer_inference(export_path, texts)}
    if not FLAGS.skip_hf:
        num_labels = len(set(examples.labels))
        inference["HF torch"] = lambda: hf_inference(hf_path, texts, num_labels)
    runs = {"training": contenders, "inference": inference}
    for r in range(FLAGS.rounds):
        record = {}
        for part in ("training", "inference"):
            if part not in FLAGS.parts:
                continue
            record[part] = {}
            for name, run in runs[part].items():
                record[part][name] = run()
                print(f"round {r + 1} {part} {name}: {record[part][name]}", flush=True)
        if "tokenization" in FLAGS.parts:
            record["tokenization"] = tokenization(spec, examples)
        results["rounds"].append(record)
    results["median"] = {
        part: {
            name: _median([r[part][name] for r in results["rounds"]])
            for name in results["rounds"][0][part]
        }
        for part in ("training", "inference")
        if part in FLAGS.parts
    }
    if "tokenization" in FLAGS.parts:
        results["median"]["tokenization"] = _median([r["tokenization"] for r in results["rounds"]])
    _print_table(results)
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {FLAGS.output}")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _print_table(results):
    median = results["median"]
    peak = results["matmul_peak_gflops"]
    print(f"\nfp32 matmul peak: {peak:.0f} GFLOP/s")
    if "training" in median:
        _print_training(median["training"], peak)
    if "inference" in median:
        _print_inference(median["inference"])
    if "tokenization" in median:
        rate = median["tokenization"]["examples_per_second"]
        print(f"\ntokenization (tf.data): {rate:.0f} ex/s")


def _print_training(training, peak):
    hf = training.get("HF Trainer (torch)", {}).get("examples_per_second")
    print(
        f"{'training':28s} {'ex/s':>8s} {'vs HF':>6s} {'GFLOP/s real':>13s} {'padded':>7s} "
        f"{'% peak':>7s} {'padding':>8s}"
    )
    for name, m in training.items():
        ratio = f"{m['examples_per_second'] / hf:.2f}" if hf else "-"
        line = f"{name:28s} {m['examples_per_second']:8.1f} {ratio:>6s}"
        if "model_gflops_padded" in m:
            line += (
                f" {m['model_gflops_real']:13.1f} {m['model_gflops_padded']:7.1f}"
                f" {100 * m['model_gflops_padded'] / peak:6.1f}%"
                f" {100 * m['padding_fraction']:7.1f}%"
            )
        print(line)
    print("\nstep time by batch shape (ms)")
    for name, m in training.items():
        if "step_ms_by_shape" in m:
            shapes = ", ".join(
                f"{k}: {v['median']:.0f} ({v['steps']:.0f} steps)"
                for k, v in m["step_ms_by_shape"].items()
            )
            print(f"{name:28s} {shapes}")
    for name, m in training.items():
        if "optimizer_update_ms" in m:
            update = m["optimizer_update_ms"]
            print(
                f"AdamW update alone ({name}): {update['all']:.1f} ms per step, "
                f"{update['token_embedding']:.1f} ms of it the token embedding"
            )
            break


def _print_inference(inference):
    hf = inference.get("HF torch", {}).get("examples_per_second")
    batch = FLAGS.eval_batch_size
    print(
        f"\n{'inference':28s} {'ex/s':>8s} {'vs HF':>6s} {'b1 p50/p95 ms':>14s} "
        f"{f'b{batch} p50/p95 ms':>16s}"
    )
    for name, m in inference.items():
        ratio = f"{m['examples_per_second'] / hf:.2f}" if hf else "-"
        one, full = m["latency_ms_batch_1"], m[f"latency_ms_batch_{batch}"]
        print(
            f"{name:28s} {m['examples_per_second']:8.1f} {ratio:>6s} "
            f"{one['p50']:7.1f}/{one['p95']:<6.1f} {full['p50']:8.1f}/{full['p95']:<7.1f}"
        )


if __name__ == "__main__":
    app.run(main)
