"""Causal language modelling: fine-tune a decoder on text, pairs or chats; generate.

The objective is the language-model loss, -sum log P(w_i | w_<i), over the
tokens that are targets:
- plain text: documents joined with the end token and cut into blocks of
  `max_seq_length` (a long document becomes several blocks, none is cut
  off; every token after the first is a target once);
- prompt/completion pairs: one row each, the loss on the completion and the
  end token only;
- chats: rendered with the checkpoint's chat template, the loss on the
  assistant turns.

Held-out data are scored by mean negative log-likelihood per target token
and perplexity (lower is better; perplexity picks the best checkpoint).

The export has `generate` (prompts -> continuations, with cached decoding in
the graph) and `score` (texts -> mean log-likelihood per token).

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.causal_lm import CausalLM, CausalLMConfig
>>> tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(backbones.decoder_path())
>>> task = CausalLM(CausalLMConfig(max_seq_length=4), tokenizer)  # SmolLM2's BPE
>>> rows = tf.function(task.encode)({"text": tf.constant(["one two three four five six"])})
>>> rows["token_ids"].numpy().tolist()  # the end token (<|im_end|>, 2) opens a document
[[2, 537, 827, 1296], [1876, 2531, 2976, 0]]
>>> rows["labels"].numpy().tolist()  # the next token (the last one: the end); -1: none
[[537, 827, 1296, 1876], [2531, 2976, 2, -1]]
"""

import dataclasses
import math
from typing import List

import numpy as np
import tensorflow as tf

from tftransfer import backbones
from tftransfer.config_checks import ConfigError, bounded, one_of, text
from tftransfer.data import chat_template, lm_readers, pipeline
from tftransfer.data.readers import DataError
from tftransfer.models import token_loss
from tftransfer.models.lean_llama import LeanCausalLM, LeanLlama
from tftransfer.tasks import base, registry
from tftransfer.tasks.causal_lm_serving import CausalLMServing
from tftransfer.training import precision

PROMPT_TRUNCATION = ("error", "left")
#: end-of-text tokens of common vocabularies; generation stops at any of them.
END_TOKENS = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>")


@dataclasses.dataclass
class CausalLMConfig(base.TaskConfig):
    """Causal language modelling and generation.

    Attributes:
        max_seq_length: tokens per training row: the block length for plain
            text; the longest prompt + completion (+ end token) otherwise.
        add_start_token: begin every document, pair and prompt with the
            tokenizer's start token (Llama 3 does; GPT-2 and SmolLM2 do not).
        chat_template: Jinja template for `messages` data; empty = the
            checkpoint's (saved with the model once read).
        max_length: the longest sequence generation handles (prompt + new
            tokens; the KV cache's length).
        prompt_truncation: a prompt with more than `max_length -
            max_new_tokens` tokens is an `error`, or loses its start
            (`left`).
        max_new_tokens, temperature, top_k, top_p, seed: generation
            defaults (temperature 0 = greedy); the export's
            `generate_with_options` takes them per request.
        stop_strings: `generate` cuts its output at the first of these.
        save_backbone: continued pretraining: also write the trained decoder
            as a keras-hub preset, `<model_dir>/backbone`, for `backbone.spec`
            of a later run (off by default: a second copy of the weights).
        jit_compile: compile each decoding step with XLA, in Python and in
            the export (TF Serving then needs
            `--xla_cpu_compilation_enabled=true`). Off by default: with the
            lean Llama step it was slower on our CPUs (BENCHMARKS.md); try
            it on GPUs and TPUs.
    """

    max_seq_length: int = bounded(256, low=2, high=base.MAX_SEQ_LENGTH)
    add_start_token: bool = False
    chat_template: str = text("")
    max_length: int = bounded(1024, low=2, high=base.MAX_SEQ_LENGTH)
    prompt_truncation: str = one_of("error", PROMPT_TRUNCATION)
    max_new_tokens: int = bounded(64, low=0, high=base.MAX_SEQ_LENGTH)
    temperature: float = bounded(0.0, low=0.0)
    top_k: int = bounded(0, low=0)
    top_p: float = bounded(1.0, above=0.0, high=1.0)
    # The sampling seed is an int64 tensor in the export's signature.
    seed: int = bounded(0, low=0, high=2**63 - 1)
    stop_strings: List[str] = text(default_factory=list)
    save_backbone: bool = False
    jit_compile: bool = False

    def check(self, key):
        super().check(key)
        if self.max_new_tokens >= self.max_length:
            raise ConfigError(
                f"{key}.max_new_tokens must be < max_length = {self.max_length} (the prompt "
                f"needs a token), got {self.max_new_tokens}"
            )


def _ragged(ids):
    """Tokenizer output as a ragged int32 tensor.

    keras-hub tokenizers return Python lists (or a dense tensor when rows
    are equally long) when called eagerly, ragged tensors in graphs.
    """
    if isinstance(ids, list):
        ids = tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1)
    elif not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    return tf.cast(ids, tf.int32)


def _token_ids(tokenizer, tokens):
    vocabulary = set(tokenizer.get_vocabulary())
    return [tokenizer.token_to_id(t) for t in tokens if t in vocabulary]


@registry.register("causal_lm", CausalLMConfig)
class CausalLM(CausalLMServing, base.Task):
    """Next-token prediction on a decoder backbone (GPT-2, Llama, SmolLM2, ...).

    Args:
        config: a `CausalLMConfig`.
        tokenizer: the backbone's keras-hub (byte-level BPE) tokenizer.
    """

    primary_metric = base.Metric("perplexity", lower_is_better=True)
    summary_metrics = ("tokens", "nll", "perplexity")
    input_text_fields = ("text", "prompt")

    @classmethod
    def saves_backbone_for(cls, config):
        return config.save_backbone

    @property
    def saves_backbone(self):
        return self.config.save_backbone

    def __init__(self, config, tokenizer):
        super().__init__(config, tokenizer)
        self.end_id = int(tokenizer.end_token_id)
        self.pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0)
        start = getattr(tokenizer, "start_token_id", None)
        if config.add_start_token and start is None:
            raise ValueError("task.causal_lm.add_start_token: the tokenizer has no start token")
        self.start_id = int(start) if config.add_start_token else None
        self.stop_ids = sorted({self.end_id, *_token_ids(tokenizer, END_TOKENS)})
        self._traced_tokenizer = None

    def _ids(self, texts):
        """A 1-D string tensor -> ragged int32 token ids, through one traced tokenizer.

        Tracing a BPE tokenizer takes seconds, so training rows, prompts and
        scored texts share one trace, in training and in every exported
        signature. Called eagerly (e.g. `generate` in a notebook) it calls
        the tokenizer eagerly; tftransfer's byte-level tokenizers
        (`HfBytePairTokenizer`) give the same ids either way.
        """
        if tf.executing_eagerly():
            return _ragged(self.tokenizer(texts))
        if self._traced_tokenizer is None:
            self._traced_tokenizer = tf.function(
                lambda texts: _ragged(self.tokenizer(texts)),
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            ).get_concrete_function()
        return self._traced_tokenizer(texts)

    # -- data -------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        del need_labels  # the text is the label
        return lm_readers.read(spec)

    def _template(self):
        template = self.config.chat_template or getattr(self.tokenizer, "chat_template", None)
        if not template:
            raise DataError(
                "the data are chats (`messages`) but the backbone's tokenizer has no chat "
                "template: set task.causal_lm.chat_template, or use prompt/completion pairs"
            )
        return template

    def _segments(self, examples):
        """`(texts, is_target)` lists per example (pairs and chats)."""
        if examples.kind == lm_readers.PROMPT_COMPLETION:
            return [([p, c], [False, True]) for p, c in zip(examples.prompts, examples.completions)]
        template = self._template()
        out = []
        for messages, where in zip(examples.messages, examples.sources):
            try:
                parts = chat_template.segments(template, messages)
            except DataError as e:
                raise DataError(f"{where}: {e}") from e
            out.append(([t for t, _ in parts], [flag for _, flag in parts]))
        return out

    def prepare(self, train_examples):
        if train_examples.kind == lm_readers.CHAT and not self.config.chat_template:
            self.config.chat_template = self._template()
        self.validate_examples(train_examples)

    def validate_examples(self, examples):
        if examples.kind == lm_readers.TEXT:
            return  # documents become blocks: any length fits
        limit = self.config.max_seq_length
        lengths = self._row_lengths(examples)
        for length, where in zip(lengths, examples.sources):
            if length > limit:
                raise DataError(
                    f"{where}: {length} tokens (with the end token) exceed "
                    f"task.causal_lm.max_seq_length={limit}; raise it or shorten the example"
                )

    def _row_lengths(self, examples):
        counts = []
        dataset = pipeline.batch(self.raw_dataset(examples), pipeline.ENCODE_CHUNK)
        # Inputs are one shorter than the sequence (the last token is only a target).
        dataset = dataset.map(lambda batch: self._sequences(batch)[0].row_lengths() - 1)
        for lengths in dataset:
            counts.extend(lengths.numpy().tolist())
        return counts

    def raw_dataset(self, examples, with_labels=True):
        del with_labels
        if examples.kind == lm_readers.TEXT:
            return tf.data.Dataset.from_tensor_slices({"text": examples.texts})
        texts, targets = zip(*self._segments(examples))
        return tf.data.Dataset.from_tensor_slices(
            {
                "segments": tf.ragged.constant(texts, dtype=tf.string),
                "targets": tf.ragged.constant(targets, dtype=tf.bool),
            }
        )

    def _column(self, rows, value, dtype=tf.int32):
        return tf.fill([rows, 1], tf.cast(value, dtype))

    def _sequences(self, batch):
        """`(token ids, is target)` ragged `[examples, (tokens)]` of pairs and chats."""
        segments, targets = batch["segments"], batch["targets"]
        pieces = self._ids(segments.flat_values)
        nested = [segments.row_lengths(), pieces.row_lengths()]
        ids = tf.RaggedTensor.from_nested_row_lengths(pieces.flat_values, nested).merge_dims(1, 2)
        flags = tf.repeat(targets.flat_values, pieces.row_lengths())
        flags = tf.RaggedTensor.from_nested_row_lengths(flags, nested).merge_dims(1, 2)
        rows = ids.nrows()
        ids = tf.concat([tf.cast(ids, tf.int32), self._column(rows, self.end_id)], axis=1)
        flags = tf.concat([flags, self._column(rows, True, tf.bool)], axis=1)
        if self.start_id is not None:
            ids = tf.concat([self._column(rows, self.start_id), ids], axis=1)
            flags = tf.concat([self._column(rows, False, tf.bool), flags], axis=1)
        return ids, flags

    def _blocks(self, texts):
        """Documents joined by the end token, cut into `max_seq_length` rows."""
        length = self.config.max_seq_length
        ids = self._ids(texts)
        rows = ids.nrows()
        if self.start_id is not None:
            ids = tf.concat([self._column(rows, self.start_id), ids], axis=1)
        ids = tf.concat([ids, self._column(rows, self.end_id)], axis=1)
        # The end token also opens the stream, so a document's first token is
        # a target too (predicted from "a document starts here").
        stream = tf.concat([[self.end_id], ids.flat_values], axis=0)
        count = tf.size(stream) - 1
        blocks = (count + length - 1) // length
        room = blocks * length - count
        inputs = tf.pad(stream[:-1], [[0, room]], constant_values=self.pad_id)
        targets = tf.pad(stream[1:], [[0, room]], constant_values=-1)
        mask = tf.cast(tf.range(blocks * length) < count, tf.int32)
        return {
            "token_ids": tf.reshape(inputs, [blocks, length]),
            "padding_mask": tf.reshape(mask, [blocks, length]),
            "labels": tf.reshape(targets, [blocks, length]),
        }

    def encode(self, batch):
        if "text" in batch:
            return self._blocks(batch["text"])
        length = self.config.max_seq_length
        ids, flags = self._sequences(batch)
        inputs, targets = ids[:, :-1], tf.where(flags[:, 1:], ids[:, 1:], -1)
        return {
            "token_ids": inputs.to_tensor(self.pad_id, shape=[None, length]),
            "padding_mask": tf.ones_like(inputs).to_tensor(0, shape=[None, length]),
            "labels": targets.to_tensor(-1, shape=[None, length]),
        }

    def position_keys(self, row_keys):
        return list(row_keys)

    def eval_dataset(self, examples, batch_size, data_config):
        """Encoded rows (blocks) with their row index, length-bucketed."""
        rows = pipeline.encoded_dataset(self, examples, data_config)
        rows = rows.enumerate().map(lambda i, row: (row, i))
        lengths = pipeline.boundaries(data_config, self.config.max_seq_length)
        keys = self.position_keys(list(rows.element_spec[0]))
        dataset = pipeline.bucket(rows, batch_size, lengths, keys, drop_remainder=False)
        return dataset.prefetch(data_config.prefetch)

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        return backbones.Backbone.wrap(backbone).causal_lm()

    def build_train_model(self, model, backbone, strategy):
        del backbone, strategy  # the decoder's fast forward reads `model` alone
        # Faster than keras-hub's Llama layers (BENCHMARKS.md, "Fine-tuning
        # speed against HF `Trainer`"); `backbone.fast_forward: off` opts out.
        return LeanCausalLM(model) if LeanLlama.supports(model, training=True) else None

    @precision.reads_compute_dtype  # row_nll casts chunks of logits
    def loss(self, labels, outputs):
        return token_loss.per_row_loss(labels, outputs)

    def logits(self, model, inputs):
        """Next-token logits for `{"token_ids", "padding_mask"}`: the lean forward where
        `LeanLlama.supports` it, else keras-hub's layers (evaluation and `score` alike)."""
        if LeanLlama.supports(model):
            return LeanLlama(model).forward(inputs["token_ids"], inputs["padding_mask"])
        return model(inputs, training=False)

    def forward(self, model, features):
        inputs = {k: features[k] for k in ("token_ids", "padding_mask")}
        nll, mask = token_loss.token_nll(features["labels"], self.logits(model, inputs))
        return {"nll": tf.reduce_sum(nll, axis=1), "tokens": tf.reduce_sum(mask, axis=1)}

    # -- evaluation ---------------------------------------------------------
    def evaluate(self, outputs, examples):
        nll = float(np.sum([o["nll"] for o in outputs], dtype=np.float64))
        tokens = float(np.sum([o["tokens"] for o in outputs], dtype=np.float64))
        mean = nll / max(tokens, 1.0)
        return {
            "examples": len(examples),
            "rows": len(outputs),
            "tokens": int(tokens),
            "nll": mean,
            "perplexity": math.exp(min(mean, 700.0)),
        }
