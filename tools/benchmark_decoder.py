"""Decoder speed against Hugging Face on the same SmolLM2 weights, side by side.

Two parts, each side in its own process (so peak RSS is that side's alone),
sides alternated for `--rounds` rounds, medians reported:

- `training`: causal-LM fine-tuning steps on Tiny Shakespeare blocks of
  `--block` tokens, batch `--batch_size`, in `--precision` (fp32 by default;
  bfloat16 on both sides where the CPU has bf16 units): tftransfer's
  trainer against HF `Trainer` (torch, CPU) on the same converted weights
  and the same blocks. Tokens/s after `--warmup_steps`, and peak RSS.
- `generation`: `--new_tokens` greedy tokens at batch 1 and 8: the exported
  SavedModel's `generate_with_options` (XLA off, and on) against HF
  `generate` with its KV cache (`min_new_tokens` so both make every token;
  the export is built without stop tokens for the same reason), in
  `--precision` on both sides (HF: torch's CPU autocast). Tokens/s and time
  to first token (one new token).

Needs the `bench` extra (torch, transformers).

Usage:
    python tools/benchmark_decoder.py --data=../shared/data/tiny_shakespeare/input.txt \\
        --output=runs/benchmark_decoder.json
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("data", "../shared/data/tiny_shakespeare/input.txt", "Training text.")
flags.DEFINE_integer("block", 256, "Tokens per training row.")
flags.DEFINE_integer("batch_size", 8, "Training batch size.")
flags.DEFINE_integer("steps", 12, "Timed training steps.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed training steps first.")
flags.DEFINE_integer("new_tokens", 128, "Generated tokens per prompt.")
flags.DEFINE_list("batch_sizes", ["1", "8"], "Generation batch sizes.")
flags.DEFINE_integer("rounds", 2, "Alternating rounds; medians are reported.")
flags.DEFINE_list("parts", ["training", "generation"], "What to measure.")
flags.DEFINE_bool("jit_compile", False, "Compile tftransfer's training step with XLA.")
flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "bfloat16"],
    "Compute type on both sides: tftransfer's runtime.mixed_precision (training) and the "
    "export's; HF's TrainingArguments(bf16=True) and, generating, torch's CPU autocast.",
)
flags.DEFINE_string("side", "", "Internal: run one measurement in this process.")
flags.DEFINE_string("export_path", "", "Internal: the SavedModel to time.")
flags.DEFINE_string("output", "runs/benchmark_decoder.json", "Where to write the results.")
FLAGS = flags.FLAGS

PROMPT = "The capital of France is"


def _blocks(tokenizer_ids, count):
    """`count` rows of `--block + 1` tokens from the start of the data."""
    need = count * (FLAGS.block + 1)
    if len(tokenizer_ids) < need:
        raise ValueError(f"{FLAGS.data}: {len(tokenizer_ids)} tokens, {need} needed")
    return [
        tokenizer_ids[i * (FLAGS.block + 1) : (i + 1) * (FLAGS.block + 1)] for i in range(count)
    ]


def _token_ids():
    import tokenizers

    from tftransfer import backbones

    folder = backbones.decoder_path()
    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    with open(FLAGS.data, encoding="utf-8") as f:
        return folder, tokenizer.encode(f.read()).ids


def tftransfer_training():
    import tensorflow as tf

    from tftransfer import configs, experiment
    from tftransfer.training import trainer

    _, ids = _token_ids()
    rows = _blocks(ids, (FLAGS.steps + FLAGS.warmup_steps) * FLAGS.batch_size)
    params = configs.load(
        ["configs/shakespeare_smollm2.yaml"],
        {
            "data": {"validation": {"path": ""}},
            # As the HF side, on every CPU (`auto` would pick bfloat16 on bf16 CPUs).
            "runtime": {"mixed_precision": FLAGS.precision},
            "task": {"causal_lm": {"max_seq_length": FLAGS.block}},
            "trainer": {
                "batch_size": FLAGS.batch_size,
                "clipnorm": 0.0,
                "warmup_ratio": 0.0,
                "jit_compile": FLAGS.jit_compile,
            },
        },
    )
    run = experiment.build(params, total_steps=FLAGS.steps + FLAGS.warmup_steps)
    with tempfile.TemporaryDirectory() as tmp:
        loop = trainer.Trainer(
            run.model,
            run.task.loss,
            run.optimizer,
            run.strategy,
            tmp,
            params.trainer,
            FLAGS.batch_size,
            run.train_model,
        )
        times = []
        for step in range(FLAGS.steps + FLAGS.warmup_steps):
            chunk = tf.constant(rows[step * FLAGS.batch_size : (step + 1) * FLAGS.batch_size])
            features = {"token_ids": chunk[:, :-1], "padding_mask": tf.ones_like(chunk[:, :-1])}
            begin = time.perf_counter()
            float(loop._train_step(features, chunk[:, 1:]))
            times.append(time.perf_counter() - begin)
    return times[FLAGS.warmup_steps :]


def hf_training():
    import torch
    import transformers

    torch.manual_seed(0)
    folder, ids = _token_ids()
    rows = _blocks(ids, (FLAGS.steps + FLAGS.warmup_steps) * FLAGS.batch_size)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    data = [{"input_ids": r[:-1], "labels": r[:-1]} for r in rows]
    stamps = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        args = transformers.TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=FLAGS.batch_size,
            learning_rate=5e-5,
            num_train_epochs=1,
            optim="adamw_torch",
            max_grad_norm=0.0,
            lr_scheduler_type="constant",
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            use_cpu=True,
            bf16=FLAGS.precision == "bfloat16",
            disable_tqdm=True,
        )
        transformers.Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=transformers.default_data_collator,
            callbacks=[Clock()],
        ).train()
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return steps[FLAGS.warmup_steps - 1 :]


def export_generator(root, jit_compile):
    """An untrained causal-LM export of SmolLM2 without stop tokens."""
    from tftransfer import configs, experiment, export, run_setup
    from tftransfer.training import precision

    params = configs.load(
        ["configs/shakespeare_smollm2.yaml"],
        {"task": {"causal_lm": {"max_length": 512, "jit_compile": jit_compile}}},
    )
    # As `tftransfer export --mixed_precision` builds it; outputs stay float32.
    with precision.dtype_policy(precision.policy_name(FLAGS.precision)):
        backbone, task = experiment.prepare_task(params, run_setup.read_split(params, "train"))
        model = task.build_model(backbone)
    task.stop_ids = []  # every row makes `--new_tokens` tokens, as HF's min_new_tokens
    return export.save(task, model, backbone, root)


def _timed(call, n):
    begin = time.perf_counter()
    call(n)
    return time.perf_counter() - begin


def tftransfer_generation():
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    signature = tf.saved_model.load(FLAGS.export_path).signatures["generate_with_options"]
    out = {}
    for batch in map(int, FLAGS.batch_sizes):

        def call(n, batch=batch):
            result = signature(
                prompt=tf.constant([PROMPT] * batch),
                max_new_tokens=tf.constant(n),
                temperature=tf.constant(0.0),
                top_k=tf.constant(0),
                top_p=tf.constant(1.0),
                seed=tf.constant(0, tf.int64),
            )
            assert int(result["generated_tokens"].numpy().min()) == n
            return result

        call(FLAGS.new_tokens)  # warm-up (and XLA compilation)
        call(1)
        out[batch] = {"first_token_s": _timed(call, 1), "total_s": _timed(call, FLAGS.new_tokens)}
    return out


def hf_generation():
    import torch
    import transformers
    from benchmarking import common

    from tftransfer import backbones

    folder = backbones.decoder_path()
    autocast = common.cpu_autocast(FLAGS.precision == "bfloat16")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    out = {}
    for batch in map(int, FLAGS.batch_sizes):
        encoded = tokenizer([PROMPT] * batch, return_tensors="pt")

        def call(n, encoded=encoded):
            with torch.no_grad(), autocast:
                return model.generate(
                    **encoded, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
                )

        call(FLAGS.new_tokens)
        out[batch] = {"first_token_s": _timed(call, 1), "total_s": _timed(call, FLAGS.new_tokens)}
    return out


SIDES = {
    "tftransfer_training": tftransfer_training,
    "hf_training": hf_training,
    "tftransfer_generation": tftransfer_generation,
    "hf_generation": hf_generation,
}


def _flag_text(value):
    return ",".join(value) if isinstance(value, list) else value


def _child(side, **extra):
    args = [sys.executable, __file__, f"--side={side}"] + [f"--{k}={v}" for k, v in extra.items()]
    args += [
        f"--{name}={_flag_text(FLAGS[name].value)}"
        for name in (
            "data",
            "block",
            "batch_size",
            "steps",
            "warmup_steps",
            "new_tokens",
            "batch_sizes",
            "jit_compile",
            "precision",
        )
    ]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{side} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.side:
        value = SIDES[FLAGS.side]()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"value": value, "peak_rss_mb": peak_mb}))
        return
    results = {"command": " ".join(sys.argv), "rounds": FLAGS.rounds}
    if "training" in FLAGS.parts:
        runs = {"tftransfer": [], "hf": []}
        for _ in range(FLAGS.rounds):
            for side in runs:
                runs[side].append(_child(f"{side}_training"))
        tokens = FLAGS.batch_size * FLAGS.block
        per_round = {
            side: [tokens / statistics.median(r["value"]) for r in records]
            for side, records in runs.items()
        }
        results["training"] = {
            side: {
                "tokens_per_second": statistics.median(per_round[side]),
                "per_round": per_round[side],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
            }
            for side, records in runs.items()
        }
        results["training"]["speedup"] = (
            results["training"]["tftransfer"]["tokens_per_second"]
            / results["training"]["hf"]["tokens_per_second"]
        )
        results["training"]["speedup_per_round"] = [
            ours / theirs for ours, theirs in zip(per_round["tftransfer"], per_round["hf"])
        ]
        print(json.dumps(results["training"], indent=1), flush=True)
    if "generation" in FLAGS.parts:
        with tempfile.TemporaryDirectory() as root:
            exports = {
                "tftransfer": export_generator(os.path.join(root, "plain"), False),
                "tftransfer_xla": export_generator(os.path.join(root, "xla"), True),
            }
            runs = {name: [] for name in (*exports, "hf")}
            for _ in range(FLAGS.rounds):
                for name in runs:
                    if name == "hf":
                        runs[name].append(_child("hf_generation"))
                    else:
                        runs[name].append(
                            _child("tftransfer_generation", export_path=exports[name])
                        )
        table = {}
        for name, records in runs.items():
            table[name] = {}
            for batch in FLAGS.batch_sizes:
                totals = [r["value"][batch]["total_s"] for r in records]
                firsts = [r["value"][batch]["first_token_s"] for r in records]
                table[name][batch] = {
                    "tokens_per_second": int(batch) * FLAGS.new_tokens / statistics.median(totals),
                    "first_token_s": statistics.median(firsts),
                }
        for name in exports:
            for batch in FLAGS.batch_sizes:
                table[name][batch]["speedup_vs_hf"] = (
                    table[name][batch]["tokens_per_second"]
                    / table["hf"][batch]["tokens_per_second"]
                )
                table[name][batch]["speedup_per_round"] = [
                    theirs["value"][batch]["total_s"] / ours["value"][batch]["total_s"]
                    for ours, theirs in zip(runs[name], runs["hf"])
                ]
        results["generation"] = table
        print(json.dumps(table, indent=1), flush=True)
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
