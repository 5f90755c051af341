"""Extractive QA side by side: tftransfer's default QA run against HF.

Data: SQuAD v1.1 dev split by article (`squad_readers.split_by_article`,
article i to evaluation when i % 4 == 3, as in BENCHMARKS.md); SQuAD train
is not on our machines. Training: `--qa_windows` windows of 384 subwords
(question at most 64) from the first training questions, tftransfer's
default `question_answering` config (windows every 128 subwords, BERT's
`doc_stride`) against HF `Trainer` with `AutoModelForQuestionAnswering` and
its `run_qa` feature preparation (`stride=128` overlap,
`only_second` truncation), same checkpoint, batch, AdamW and learning rate.
Both sides train on exactly that many windows, so throughput is windows/s.
Inference: the export's `serving_default` (question and context strings in,
answer text and character offsets out) against HF's eval loop (windows,
model, the best span of at most 30 subwords across a question's windows,
cut from the context by offsets), on the first evaluation questions.
"""

import json
import os

import numpy as np

from benchmarking import common, training

#: configs/squad_minilm.yaml's shape; `--smoke` makes it fit a tiny model.
SHAPE = {"max_seq_length": 384, "max_query_length": 64, "doc_stride": 128}
MAX_ANSWER_LENGTH = 30


def split(path, root):
    """Train and evaluation SQuAD files of `path`'s articles (i % 4 == 3 to evaluation)."""
    from tftransfer.data import squad_readers

    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    paths = []
    for name, part in zip(("train", "eval"), squad_readers.split_by_article(document, 4, 3)):
        paths.append(os.path.join(root, f"squad_{name}.json"))
        with open(paths[-1], "w", encoding="utf-8") as f:
            json.dump(part, f)
    return paths


def read(path, limit):
    from tftransfer.data import squad_readers

    return squad_readers.read(path, "squad", max_examples=limit)


def params(spec, batch_size, learning_rate, num_examples, fast_forward="auto", precision="float32"):
    from tftransfer import configs

    return configs.load(
        [],
        {
            "backbone": {"spec": spec, "fast_forward": fast_forward},
            "task": {
                "type": "question_answering",
                "question_answering": {**SHAPE, "max_answer_length": MAX_ANSWER_LENGTH},
            },
            "data": {"shuffle_buffer_size": num_examples},
            # float32 on every CPU by default, as the HF side (`auto` picks bfloat16 on bf16 CPUs).
            "runtime": {"mixed_precision": precision},
            "trainer": {
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "clipnorm": 0.0,
                "warmup_ratio": 0.0,
                "seed": 0,
            },
        },
    )


def tftransfer_training(spec, examples, windows, batch_size, learning_rate, precision="float32"):
    cfg = params(spec, batch_size, learning_rate, len(examples.ids), precision=precision)
    return training.time_pass(cfg, examples, windows // batch_size)


def hf_features(tokenizer, examples):
    """HF `run_qa`'s training features: overflowing windows with start/end positions."""
    encoded = tokenizer(
        examples.questions,
        examples.contexts,
        truncation="only_second",
        max_length=SHAPE["max_seq_length"],
        stride=SHAPE["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    rows = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        ids = encoded["input_ids"][i]
        sample = encoded["overflow_to_sample_mapping"][i]
        text, start_char = examples.answers[sample][0]
        end_char = start_char + len(text)
        sequence = encoded.sequence_ids(i)
        first = sequence.index(1)
        last = len(sequence) - 1 - sequence[::-1].index(1)
        start = end = ids.index(tokenizer.cls_token_id)
        if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
            start = first
            while start <= last and offsets[start][0] <= start_char:
                start += 1
            start -= 1
            end = last
            while end >= first and offsets[end][1] >= end_char:
                end -= 1
            end += 1
        row = {k: encoded[k][i] for k in ("input_ids", "attention_mask")}
        if "token_type_ids" in encoded:
            row["token_type_ids"] = encoded["token_type_ids"][i]
        rows.append({**row, "start_positions": start, "end_positions": end})
    return rows


def hf_training(path, examples, windows, batch_size, learning_rate, bf16=False):
    import torch
    import transformers

    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(path)
    rows = hf_features(tokenizer, examples)[:windows]
    collator = transformers.DataCollatorWithPadding(tokenizer)
    return training.hf_trainer_pass(model, rows, collator, batch_size, learning_rate, bf16)


def export_untrained(spec, examples, root, fast_forward="auto", precision="float32"):
    """A SavedModel of the span finder (head untrained: speed only).

    `fast_forward: off` serves through keras-hub's BERT blocks; `precision`
    is the run's (and so the export's) compute type.
    """
    from tftransfer import experiment, export

    cfg = params(spec, 32, 5e-5, len(examples.ids), fast_forward, precision)
    run = experiment.build(cfg, train_examples=examples)
    name = "qa_export" + ("_off" if fast_forward == "off" else "") + f"_{precision}"
    return export.save(run.task, run.model, run.backbone, os.path.join(root, name))


def tftransfer_inference(export_path, examples, record):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    serve = tf.saved_model.load(export_path).signatures["serving_default"]

    def call(batch):
        questions, contexts = zip(*batch)
        out = serve(question=tf.constant(questions), context=tf.constant(contexts))
        return out["answer_text"].numpy()

    return record(call, list(zip(examples.questions, examples.contexts)))


def hf_inference(path, examples, record, bf16=False):
    """HF in eval mode (bf16: torch's CPU autocast, as `TrainingArguments(bf16=True)`)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(path).eval()
    autocast = common.cpu_autocast(bf16)

    def call(batch):
        questions, contexts = map(list, zip(*batch))
        with torch.inference_mode(), autocast:
            encoded = tokenizer(
                questions,
                contexts,
                truncation="only_second",
                max_length=SHAPE["max_seq_length"],
                stride=SHAPE["doc_stride"],
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding=True,
                return_tensors="pt",
            )
            offsets = encoded.pop("offset_mapping").numpy()
            samples = encoded.pop("overflow_to_sample_mapping").numpy()
            out = model(**encoded)
        starts, ends = out.start_logits.float().numpy(), out.end_logits.float().numpy()
        return _best_answers(starts, ends, offsets, samples, encoded, contexts)

    return record(call, list(zip(examples.questions, examples.contexts)))


def _best_answers(starts, ends, offsets, samples, encoded, contexts, n_best=20):
    """HF `postprocess_qa_predictions`: the best valid span per question across its windows."""
    best = [(-np.inf, "")] * len(contexts)
    for i in range(len(samples)):
        sequence = encoded.sequence_ids(i)
        context_token = np.array([s == 1 for s in sequence])
        top_starts = np.argsort(starts[i])[::-1][:n_best]
        top_ends = np.argsort(ends[i])[::-1][:n_best]
        for s in top_starts:
            for e in top_ends:
                if not (context_token[s] and context_token[e]) or e < s:
                    continue
                if e - s + 1 > MAX_ANSWER_LENGTH:
                    continue
                score = starts[i, s] + ends[i, e]
                sample = samples[i]
                if score > best[sample][0]:
                    text = contexts[sample][offsets[i, s, 0] : offsets[i, e, 1]]
                    best[sample] = (score, text)
    return [text for _, text in best]
