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

import concurrent.futures
import functools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags
from benchmarking import training

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
flags.DEFINE_list(
    "parts",
    ["training", "inference", "tokenization", "memory", "serving", "ner", "qa"],
    "Which measurements to run (training and inference: text classification; memory: peak "
    "RSS of each side in its own process; serving: first call, concurrent clients, batching; "
    "ner and qa: training and inference of those tasks against HF).",
)
flags.DEFINE_string("ner_data", "../shared/data/conll2003/eng.train", "NER training file.")
flags.DEFINE_string("ner_eval_data", "../shared/data/conll2003/eng.testa", "NER inference file.")
flags.DEFINE_integer("ner_examples", 2048, "NER training sentences (the first ones).")
flags.DEFINE_integer("ner_eval_examples", 1024, "NER inference sentences.")
flags.DEFINE_string(
    "qa_data", "../shared/data/squad_v1.1/dev-v1.1.json", "SQuAD JSON, split by article."
)
flags.DEFINE_integer("qa_windows", 1024, "QA training windows (from the first questions).")
flags.DEFINE_integer("qa_eval_examples", 512, "QA inference questions.")
flags.DEFINE_string("child", "", "Internal (`memory`): run `<part>:<name>` alone.")
flags.DEFINE_string("child_export", "", "Internal (`memory`): the SavedModel to serve.")
flags.DEFINE_list(
    "contenders",
    [],
    "Only training contenders (of the training, ner and qa parts) whose names contain one "
    "of these (empty: all); a name ending in `$` matches that name only.",
)
flags.DEFINE_bool(
    "smoke",
    False,
    "Checks every part of the script runs: a tiny random model, a few "
    "examples, and per part only the contenders in SMOKE_CONTENDERS (the "
    "others call the same functions with other settings; each costs "
    "seconds of tracing or a process).",
)
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
        num_hidden_layers=1,
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
        iterations = 3 if FLAGS.smoke else 30
        start = time.perf_counter()
        for _ in range(iterations):
            step(a, b).numpy()
        elapsed = time.perf_counter() - start
        best = max(best, 2 * m * k * n * iterations / elapsed / 1e9)
    return best


# -- (a) training ------------------------------------------------------------
def tftransfer_training(
    spec, examples, buckets, jit_compile, packing=False, precision="", fast_forward="auto"
):
    """Examples/s of tftransfer's training step over `examples` (one warm-up step per shape)."""
    from tftransfer import configs

    params = configs.load(
        [],
        {
            "backbone": {"spec": spec, "fast_forward": fast_forward},
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
    return training.time_pass(params, examples, len(examples) // FLAGS.batch_size)


def hf_training(path, examples, bf16=False):
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
    collator = transformers.DataCollatorWithPadding(tokenizer)
    return training.hf_trainer_pass(
        model, rows, collator, FLAGS.batch_size, FLAGS.learning_rate, bf16=bf16
    )


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


def hf_inference(path, texts, num_labels, bf16=False):
    """HF in eval mode, each batch tokenized and padded to its longest (bf16: CPU autocast)."""
    import torch
    import transformers
    from benchmarking import common

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels
    ).eval()

    autocast = common.cpu_autocast(bf16)

    def call(batch):
        with torch.inference_mode(), autocast:
            inputs = tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=FLAGS.max_seq_length,
                return_tensors="pt",
            )
            return torch.softmax(model(**inputs).logits.float(), -1).numpy()

    return _inference_record(call, texts)


def export_untrained(spec, examples, root, precision="", fast_forward="auto"):
    """A SavedModel of the classifier (its head untrained: speed only).

    `precision` (e.g. `bfloat16`) is the type it computes in, as
    `tftransfer export --mixed_precision` makes it; outputs stay float32.
    `fast_forward: off` serves through keras-hub's BERT blocks.
    """
    from tftransfer import configs, experiment, export

    params = configs.load(
        [],
        {
            "backbone": {"spec": spec, "fast_forward": fast_forward},
            "task": {"text_classification": {"max_seq_length": FLAGS.max_seq_length}},
            "runtime": {"mixed_precision": precision},
        },
    )
    run = experiment.build(params, train_examples=examples)
    suffix = (f"_{precision}" if precision else "") + ("_off" if fast_forward == "off" else "")
    folder = os.path.join(root, f"export{suffix}")
    return export.save(run.task, run.model, run.backbone, folder)


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
    root = tempfile.mkdtemp(prefix="tftransfer-bench-")
    try:
        _run(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _chosen(name, pattern):
    """Whether `--contenders`' `pattern` picks the contender `name`."""
    return pattern[:-1] == name if pattern.endswith("$") else pattern in name


def _contenders(spec, examples, hf_path, texts, export_path, root):
    """`{"training": {name: run}, "inference": {name: run}}`; each run returns a record."""
    buckets = [16, 32, 48] if FLAGS.max_seq_length > 48 else [8]
    training = {
        "tftransfer fixed": lambda: tftransfer_training(spec, examples, [], False),
        "tftransfer fixed + XLA": lambda: tftransfer_training(spec, examples, [], True),
        "tftransfer buckets": lambda: tftransfer_training(spec, examples, buckets, False),
        "tftransfer buckets + XLA": lambda: tftransfer_training(spec, examples, buckets, True),
        "tftransfer packed": lambda: tftransfer_training(spec, examples, [], False, True),
        "tftransfer packed + XLA": lambda: tftransfer_training(spec, examples, [], True, True),
        # Fast only where the CPU has AVX512_BF16 or AMX (emulated elsewhere).
        "tftransfer packed bf16": lambda: tftransfer_training(
            spec, examples, [], False, True, precision="bfloat16"
        ),
        # The same packed steps through keras-hub's BERT blocks
        # (`backbone.fast_forward: off`): what `LeanBert` is worth.
        "tftransfer packed, keras-hub blocks": lambda: tftransfer_training(
            spec, examples, [], False, True, fast_forward="off"
        ),
        "tftransfer packed bf16, keras-hub blocks": lambda: tftransfer_training(
            spec, examples, [], False, True, precision="bfloat16", fast_forward="off"
        ),
    }
    if not FLAGS.skip_hf:
        training["HF Trainer (torch)"] = lambda: hf_training(hf_path, examples)
        # bf16 against bf16: TrainingArguments(bf16=True) is torch's CPU autocast.
        training["HF Trainer (torch) bf16"] = lambda: hf_training(hf_path, examples, bf16=True)
    inference = {"tftransfer SavedModel": lambda: tftransfer_inference(export_path, texts)}
    if FLAGS.child_export or "inference" in FLAGS.parts:
        bf16_export = _lazy_export(spec, examples, root, "bfloat16")
        inference["tftransfer SavedModel bf16"] = lambda: tftransfer_inference(bf16_export(), texts)
        for precision in ("", "bfloat16"):
            off = _lazy_export(spec, examples, root, precision, fast_forward="off")
            name = f"tftransfer SavedModel{' bf16' if precision else ''}, keras-hub blocks"
            inference[name] = lambda off=off: tftransfer_inference(off(), texts)
    if not FLAGS.skip_hf:
        num_labels = len(set(examples.labels))
        inference["HF torch"] = lambda: hf_inference(hf_path, texts, num_labels)
        inference["HF torch bf16"] = lambda: hf_inference(hf_path, texts, num_labels, bf16=True)
    return {"training": training, "inference": inference}


def _lazy_export(spec, examples, root, precision, fast_forward="auto"):
    """Another SavedModel (bfloat16, keras-hub's blocks), written at its first use."""
    return functools.cache(
        functools.partial(export_untrained, spec, examples, root, precision, fast_forward)
    )


#: the sides whose peak RSS the `memory` part measures, each in its own process.
MEMORY_SIDES = (
    ("training", "tftransfer buckets"),
    ("training", "tftransfer packed"),
    ("training", "HF Trainer (torch)"),
    ("inference", "tftransfer SavedModel"),
    ("inference", "HF torch"),
)


#: what `--smoke` runs: one tftransfer side (the default, packed) and the HF
#: side of each part. The other tftransfer contenders are the same functions
#: with other batch shapes, XLA or bfloat16, each seconds of tracing; every
#: memory side's process is this script's `--child`, so one shows it works.
SMOKE_CONTENDERS = {
    "training": ("tftransfer packed", "HF Trainer (torch)"),
    "inference": ("tftransfer SavedModel", "HF torch"),
    "memory": ("tftransfer packed",),
}


def _memory(results, export_path):
    """Peak RSS of each side alone: this script again with `--child`, one side per process."""
    import subprocess
    import sys

    own = ("--output", "--parts", "--child", "--rounds", "--contenders")
    args = [a for a in sys.argv[1:] if not a.lstrip("-").startswith(tuple(o[2:] for o in own))]
    out = {}
    for part, name in MEMORY_SIDES:
        if FLAGS.skip_hf and name.startswith("HF"):
            continue
        if FLAGS.smoke and name not in SMOKE_CONTENDERS["memory"]:
            continue
        command = [sys.executable, os.path.abspath(__file__), *args]
        command += [f"--child={part}:{name}", f"--child_export={export_path}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{name} alone failed:\n{result.stderr[-3000:]}")
        record = json.loads(result.stdout.strip().splitlines()[-1])
        out[f"{part}: {name}"] = record["peak_rss_mb"]
        print(f"peak RSS {part} {name}: {record['peak_rss_mb']:.0f} MB", flush=True)
    results["peak_rss_mb"] = out


def _child(spec, examples, hf_path, texts, root):
    """`--child=<part>:<name>`: that side alone once; prints its record and peak RSS."""
    from benchmarking import common

    part, name = FLAGS.child.split(":", 1)
    record = _contenders(spec, examples, hf_path, texts, FLAGS.child_export, root)[part][name]()
    print(json.dumps({"record": record, "peak_rss_mb": common.peak_rss_mb()}))


def _task_contenders(root, spec, hf_path):
    """NER and QA parts (`--parts=ner,qa`): `{"ner training": {name: run}, ...}`."""
    from benchmarking import question_answering as qa
    from benchmarking import token_classification as ner

    ner_paths = (FLAGS.ner_data, FLAGS.ner_eval_data)
    qa_path = FLAGS.qa_data
    if FLAGS.smoke:  # the bundled samples, cut to the tiny model's 64 positions
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
        ner_paths = [os.path.join(data, "wnut17_sample", f) for f in ("train.conll", "dev.conll")]
        qa_path = os.path.join(data, "squad_sample", "dev.json")
        ner.SHAPE.update(max_seq_length=FLAGS.max_seq_length)
        qa.SHAPE.update(max_seq_length=64, max_query_length=16, doc_stride=16)
    runs, batch = {}, FLAGS.batch_size
    if "ner" in FLAGS.parts:
        ner_train, dev = ner.read(ner_paths[0], FLAGS.ner_examples), ner.read(ner_paths[1], 0)
        sentences = dev.tokens[: FLAGS.ner_eval_examples]
        # Each export is written at its first use (outside the timed calls).
        ner_export = functools.cache(functools.partial(ner.export_untrained, spec, ner_train, root))
        ner_lr = FLAGS.learning_rate
        runs["ner training"] = {
            "tftransfer": lambda: ner.tftransfer_training(spec, ner_train, batch, ner_lr)
        }
        runs["ner inference"] = {
            "tftransfer SavedModel": lambda: ner.tftransfer_inference(
                ner_export(), sentences, _inference_record
            )
        }
        if not FLAGS.smoke:  # what `runtime.mixed_precision: auto` trains in on a bf16 CPU
            runs["ner training"]["tftransfer bf16"] = lambda: ner.tftransfer_training(
                spec, ner_train, batch, ner_lr, precision="bfloat16"
            )
        if not FLAGS.skip_hf:
            labels = len(ner._labels(ner_train))
            runs["ner training"]["HF Trainer (torch)"] = lambda: ner.hf_training(
                hf_path, ner_train, batch, ner_lr
            )
            runs["ner inference"]["HF torch"] = lambda: ner.hf_inference(
                hf_path, sentences, labels, _inference_record
            )
            if not FLAGS.smoke:
                runs["ner training"]["HF Trainer (torch) bf16"] = lambda: ner.hf_training(
                    hf_path, ner_train, batch, ner_lr, bf16=True
                )
    if "qa" in FLAGS.parts:
        train_path, eval_path = qa.split(qa_path, root)
        qa_train = qa.read(train_path, FLAGS.qa_windows)  # one window or more per question
        questions = qa.read(eval_path, FLAGS.qa_eval_examples)
        qa_export = functools.cache(functools.partial(qa.export_untrained, spec, qa_train, root))
        n, lr = FLAGS.qa_windows, FLAGS.learning_rate
        runs["qa training"] = {
            "tftransfer": lambda: qa.tftransfer_training(spec, qa_train, n, batch, lr)
        }
        runs["qa inference"] = {
            "tftransfer SavedModel": lambda: qa.tftransfer_inference(
                qa_export(), questions, _inference_record
            )
        }
        if not FLAGS.smoke:
            runs["qa training"]["tftransfer bf16"] = lambda: qa.tftransfer_training(
                spec, qa_train, n, batch, lr, precision="bfloat16"
            )
            # Other exports: through keras-hub's BERT blocks (`backbone.fast_forward: off`:
            # what `LeanBert` is worth), and in bfloat16 (what `runtime.mixed_precision: auto`
            # exports on a bf16 CPU).
            for name, options in (
                ("tftransfer SavedModel, keras-hub blocks", {"fast_forward": "off"}),
                ("tftransfer SavedModel bf16", {"precision": "bfloat16"}),
            ):
                export = functools.cache(
                    functools.partial(qa.export_untrained, spec, qa_train, root, **options)
                )
                runs["qa inference"][name] = lambda export=export: qa.tftransfer_inference(
                    export(), questions, _inference_record
                )
        if not FLAGS.skip_hf:
            runs["qa training"]["HF Trainer (torch)"] = lambda: qa.hf_training(
                hf_path, qa_train, n, batch, lr
            )
            runs["qa inference"]["HF torch"] = lambda: qa.hf_inference(
                hf_path, questions, _inference_record
            )
            if not FLAGS.smoke:
                runs["qa training"]["HF Trainer (torch) bf16"] = lambda: qa.hf_training(
                    hf_path, qa_train, n, batch, lr, bf16=True
                )
                runs["qa inference"]["HF torch bf16"] = lambda: qa.hf_inference(
                    hf_path, questions, _inference_record, bf16=True
                )
    return runs


def _run(root):
    import tensorflow as tf

    from tftransfer import backbones

    spec, train_path, eval_path = FLAGS.backbone, FLAGS.data, FLAGS.eval_data
    if FLAGS.smoke:
        spec, train_path, eval_path = smoke_setup(root)
    hf_path = backbones.default_path() if spec == "default" else spec
    examples = read_texts(train_path, FLAGS.num_examples)
    texts = list(read_texts(eval_path, FLAGS.num_eval_examples).texts)
    if FLAGS.child:
        return _child(spec, examples, hf_path, texts, root)

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
    # The SST-2 export serves the inference, memory and serving parts only.
    uses_export = {"inference", "memory", "serving"} & set(FLAGS.parts)
    export_path = export_untrained(spec, examples, root) if uses_export else None
    runs = _contenders(spec, examples, hf_path, texts, export_path, root)
    if FLAGS.smoke:
        for part in ("training", "inference"):
            runs[part] = {k: v for k, v in runs[part].items() if k in SMOKE_CONTENDERS[part]}
    runs.update(_task_contenders(root, spec, hf_path))
    if FLAGS.contenders:
        for part in ("training", "ner training", "qa training"):
            if part in runs:
                chosen = [k for k in runs[part] if any(_chosen(k, c) for c in FLAGS.contenders)]
                runs[part] = {k: runs[part][k] for k in chosen}
    timed = [p for p in runs if p.split()[0] in FLAGS.parts]
    for r in range(FLAGS.rounds):
        record = {}
        for part in timed:
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
        for part in timed
    }
    if "tokenization" in FLAGS.parts:
        results["median"]["tokenization"] = _median([r["tokenization"] for r in results["rounds"]])
    _print_table(results)
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        memory = pool.submit(_memory, results, export_path) if "memory" in FLAGS.parts else None
        if memory and not FLAGS.smoke:
            memory.result()  # peak memory is measured with nothing else running
        # `--smoke` checks that each child runs and reports, not its figures:
        # the memory child runs beside the serving ones.
        if "serving" in FLAGS.parts:
            _serving(results, export_path, texts)
        if memory:
            memory.result()
    with open(FLAGS.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {FLAGS.output}")


def _serving(results, export_path, texts):
    """First call, concurrent clients and batching; writes batching_parameters.txt."""
    import sys

    from benchmarking import serving

    results["serving"] = serving.measure(export_path, texts, FLAGS.smoke, FLAGS.rounds)
    serving.print_table(results["serving"])
    path = os.path.join(os.path.dirname(FLAGS.output) or ".", "batching_parameters.txt")
    command = "python tools/benchmark.py " + " ".join(sys.argv[1:])
    with open(path, "w") as f:
        f.write(
            serving.batching_parameters_text(
                results["serving"]["batching_parameters"], command, results["machine"]["cpu"]
            )
        )
    print(f"wrote {path}")


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
    for part, records in median.items():
        if part.endswith("training"):
            _print_training(records, peak, part)
        elif part.endswith("inference"):
            _print_inference(records, part)
    if "tokenization" in median:
        rate = median["tokenization"]["examples_per_second"]
        print(f"\ntokenization (tf.data): {rate:.0f} ex/s")


def _print_training(training, peak, title="training"):
    hf = training.get("HF Trainer (torch)", {}).get("examples_per_second")
    print(
        f"\n{title:28s} {'ex/s':>8s} {'vs HF':>6s} {'GFLOP/s real':>13s} {'padded':>7s} "
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


def _print_inference(inference, title="inference"):
    hf = inference.get("HF torch", {}).get("examples_per_second")
    batch = FLAGS.eval_batch_size
    print(
        f"\n{title:28s} {'ex/s':>8s} {'vs HF':>6s} {'b1 p50/p95 ms':>14s} "
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
