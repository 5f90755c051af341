"""NER side by side: tftransfer's default token-classification run against HF.

Training: the first `--ner_examples` sentences of a CoNLL file, tftransfer's
default `token_classification` config (max 128 subwords, length buckets) against
HF `Trainer` with `AutoModelForTokenClassification` (its `run_ner` recipe:
the word's tag on its first subword, -100 on the rest,
`DataCollatorForTokenClassification`, `group_by_length`), same checkpoint,
batch size, AdamW and learning rate. Inference: the export's `tag_tokens`
signature (pre-split words in, a tag per word out) against HF's eval loop
(tokenize the words, run the model, take each word's first subword).
"""

from benchmarking import training

#: configs/conll03_minilm.yaml's; `--smoke` makes it fit a tiny model.
SHAPE = {"max_seq_length": 128}


def read(path, limit):
    from tftransfer.data import tagged_readers

    return tagged_readers.read(path, format="conll", max_examples=limit)


def params(spec, examples, batch_size, learning_rate, precision="float32"):
    from tftransfer import configs

    return configs.load(
        [],
        {
            "backbone": {"spec": spec},
            "task": {
                "type": "token_classification",
                "token_classification": dict(SHAPE),
            },
            "data": {"shuffle_buffer_size": len(examples)},
            # float32 unless asked (`auto` would pick bfloat16 on bf16 CPUs).
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


def tftransfer_training(spec, examples, batch_size, learning_rate, precision="float32"):
    cfg = params(spec, examples, batch_size, learning_rate, precision)
    return training.time_pass(cfg, examples, len(examples) // batch_size)


def _labels(examples):
    return sorted({t for tags in examples.tags for t in tags})


def hf_training(path, examples, batch_size, learning_rate, bf16=False):
    import torch
    import transformers

    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    labels = _labels(examples)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels)
    )
    encoded = tokenizer(
        examples.tokens,
        is_split_into_words=True,
        truncation=True,
        max_length=SHAPE["max_seq_length"],
    )
    rows = []
    for i, tags in enumerate(examples.tags):
        previous, row_labels = None, []
        for word in encoded.word_ids(i):
            first = word is not None and word != previous
            row_labels.append(labels.index(tags[word]) if first else -100)
            previous = word
        rows.append(
            {
                "input_ids": encoded["input_ids"][i],
                "attention_mask": encoded["attention_mask"][i],
                "labels": row_labels,
            }
        )
    collator = transformers.DataCollatorForTokenClassification(tokenizer)
    return training.hf_trainer_pass(model, rows, collator, batch_size, learning_rate, bf16)


def export_untrained(spec, examples, root):
    """A SavedModel of the tagger (head untrained: speed only)."""
    import os

    from tftransfer import experiment, export

    run = experiment.build(params(spec, examples, 32, 5e-5), train_examples=examples)
    return export.save(run.task, run.model, run.backbone, os.path.join(root, "ner_export"))


def tftransfer_inference(export_path, sentences, record):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    tag = tf.saved_model.load(export_path).signatures["tag_tokens"]

    def call(batch):
        width = max(len(s) for s in batch)
        padded = [s + [""] * (width - len(s)) for s in batch]
        return tag(tokens=tf.constant(padded, tf.string))["tags"].numpy()

    return record(call, sentences)


def hf_inference(path, sentences, num_labels, record):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        path, num_labels=num_labels
    ).eval()

    def call(batch):
        with torch.inference_mode():
            inputs = tokenizer(
                batch,
                is_split_into_words=True,
                padding=True,
                truncation=True,
                max_length=SHAPE["max_seq_length"],
                return_tensors="pt",
            )
            predicted = model(**inputs).logits.argmax(-1).numpy()
        tags = []
        for i in range(len(batch)):
            previous, row = None, []
            for position, word in enumerate(inputs.word_ids(i)):
                if word is not None and word != previous:
                    row.append(int(predicted[i, position]))
                previous = word
            tags.append(row)
        return tags

    return record(call, sentences)
