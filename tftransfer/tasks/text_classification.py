"""Text classification: single sentences or sentence pairs, multi-class.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.text_classification import (
...     TextClassification,
...     TextClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = TextClassificationConfig(labels=["negative", "positive"])
>>> task = TextClassification(cfg, tokenizer)
>>> model = task.build_model(backbone)
>>> answers = task.postprocess(model(task.tokenize({"text": tf.constant(["what a lovely day"])})))
>>> sorted(answers), answers["probabilities"].shape
(['label_ids', 'labels', 'probabilities'], TensorShape([1, 2]))
"""

import collections

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer import backbones
from tftransfer.config_checks import ConfigError
from tftransfer.data import pipeline
from tftransfer.data.readers import DataError
from tftransfer.metrics import classification as classification_metrics
from tftransfer.models import heads, windowed_classifier
from tftransfer.models.packed_text_classifier import PackedTextClassifier
from tftransfer.tasks import base, registry
from tftransfer.tasks.text_classification_config import TextClassificationConfig
from tftransfer.text import text_windows
from tftransfer.text.word_tokenizer import SpecialIds


def _ones_like(tokens):
    # Eager keras-hub tokenizers return Python lists; in tf.data and
    # serving graphs, ragged tensors.
    if isinstance(tokens, list):
        tokens = tf.ragged.constant(tokens, dtype=tf.int32)
    return tf.ones_like(tokens)


def _warn_rare_labels(examples, most=5):
    """Prints labels seen once among many examples: usually typos (`positivP`)."""
    counts = collections.Counter(examples.labels)
    if len(examples) < 20 or len(counts) < 2:
        return
    first = {}
    for label, where in zip(examples.labels, examples.sources):
        first.setdefault(label, where)
    rare = sorted((label for label, n in counts.items() if n == 1), key=first.get)
    if rare:
        shown = ", ".join(f"`{label}` ({first[label]})" for label in rare[:most])
        more = f" and {len(rare) - most} more" if len(rare) > most else ""
        logging.warning(
            f"labels seen only once in {len(examples)} training examples: "
            f"{shown}{more}. A typo? Each becomes a class of its own; set "
            "task.text_classification.labels to fix the label set."
        )


@registry.register("text_classification", TextClassificationConfig)
class TextClassification(base.Task):
    """Classifies a text (or a pair of texts) into one of `config.labels`.

    Args:
        config: a `TextClassificationConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
    """

    primary_metric = base.Metric("accuracy")
    summary_metrics = ("examples", "accuracy", "macro_f1")
    input_text_fields = ("text", "text_pair")
    learns_from_teacher = True

    def __init__(self, config, tokenizer):
        super().__init__(config, tokenizer)
        ids = SpecialIds.of(tokenizer)
        self.pad_id = ids.pad
        self.packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=config.max_seq_length,
            start_value=ids.start,
            end_value=ids.end,
            pad_value=ids.pad,
        )
        # The padding mask comes from packing ones the same way: telling
        # padding by its id fails where the pad id is also text (GPT-2 pads
        # with id 0, "!").
        self.mask_packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=config.max_seq_length, start_value=1, end_value=1, pad_value=0
        )

    @property
    def text_pair(self):
        return bool(self.config.text_pair)

    @property
    def labels(self):
        return list(self.config.labels)

    # -- data -------------------------------------------------------------
    @property
    def num_outputs(self):
        """Units of the head: one logit per label."""
        return len(self.labels)

    def prepare_text_pair(self, train_examples):
        """Sets `config.text_pair` from the training data, or checks it against them."""
        has_pairs = train_examples.text_pairs is not None
        if self.config.text_pair is None:
            self.config.text_pair = has_pairs
        elif self.config.text_pair != has_pairs:
            raise DataError(
                f"task.{self.name}.text_pair is {self.config.text_pair} but the "
                f"training data {'has' if has_pairs else 'has no'} `text_pair_column`"
            )

    def prepare(self, train_examples):
        self.prepare_text_pair(train_examples)
        if not self.config.labels:
            _warn_rare_labels(train_examples)
            found = sorted(set(train_examples.labels))
            if all(v.lstrip("-").isdigit() for v in found):
                found = sorted(found, key=int)
            self.config.labels = found
        if len(self.config.labels) < 2:
            raise DataError(f"text classification needs at least 2 labels, found {self.labels}")
        if self.config.balanced_class_weights:
            ids = self.encode_labels(train_examples)
            counts = np.bincount(ids, minlength=len(self.labels)).astype(float)
            weights = len(ids) / (len(self.labels) * np.maximum(counts, 1.0))
            self.config.class_weights = [round(float(w), 6) for w in weights]
        if self.config.class_weights and len(self.config.class_weights) != len(self.labels):
            raise DataError(
                f"task.class_weights has {len(self.config.class_weights)} values "
                f"for {len(self.labels)} labels"
            )

    def encode_labels(self, examples):
        """Maps raw labels (names, or integer ids) to ids; unknown is an error."""
        index = {name: i for i, name in enumerate(self.labels)}
        ids = []
        for label, where in zip(examples.labels, examples.sources):
            if label in index:
                ids.append(index[label])
            elif label.isdigit() and int(label) < len(index):
                ids.append(int(label))
            else:
                raise DataError(
                    f"{where}: unknown label `{label}` (the model knows: {', '.join(self.labels)})"
                )
        return np.asarray(ids, dtype=np.int32)

    def validate_examples(self, examples):
        has_pairs = examples.text_pairs is not None
        if has_pairs != bool(self.text_pair) and len(examples):
            where = examples.sources[0].rpartition(":")[0] or examples.sources[0]
            raise DataError(
                f"{where}: the model classifies "
                + (
                    "sentence pairs, but this split has no `text_pair_column`"
                    if self.text_pair
                    else "single texts, but this split sets `text_pair_column`"
                )
                + " (every split needs the training split's columns)"
            )
        self.encode_labels(examples)

    def raw_dataset(self, examples, with_labels=True):
        if self.text_pair and examples.text_pairs is None:
            raise DataError("this is a sentence-pair task: set `text_pair_column`")
        columns = {"text": examples.texts}
        if self.text_pair:
            columns["text_pair"] = examples.text_pairs
        if with_labels:
            columns["label"] = self.encode_labels(examples)
        return tf.data.Dataset.from_tensor_slices(columns)

    @property
    def windowed(self):
        """Whether long texts become windows (features `[texts, max_windows, length]`)."""
        # Subclasses' own configs written before long texts existed lack the key.
        return getattr(self.config, "long_texts", "truncate") == "windows"

    def tokenize(self, inputs):
        """Raw strings -> padded backbone inputs (graph ops, tf.data and export).

        `[texts, max_seq_length]` features, or with `long_texts: windows`
        `[texts, max_windows, max_seq_length]`, windows past a text's last
        all padding.
        """
        text = self.tokenizer(inputs["text"])
        if isinstance(text, list):  # eager keras-hub tokenizers return lists
            text = tf.ragged.constant(text, dtype=tf.int32)
        pair = self.tokenizer(inputs["text_pair"]) if self.text_pair else None
        length = self.config.max_seq_length
        # What the first text may use: the sequence less [CLS] and [SEP],
        # less the second text ([SEP] included) up to half the sequence.
        budget = length - 2
        if pair is not None:
            if isinstance(pair, list):
                pair = tf.ragged.constant(pair, dtype=tf.int32)
            pair = pair[:, : (length - 3) // 2] if self.windowed else pair
            budget = length - 3 - tf.minimum(pair.row_lengths(), (length - 3) // 2)
        if not self.windowed:
            truncation = getattr(self.config, "truncation", "head")
            if truncation != "head":
                text = text_windows.truncate(text, budget, truncation)
            return self._pack(text, pair)
        stride = self.config.window_stride or tf.maximum(budget // 2, 1)
        windows, document = text_windows.split(text, budget, stride, self.config.max_windows)
        rows = self._pack(windows, None if pair is None else tf.gather(pair, document))
        texts = text.nrows()
        shape = [texts, self.config.max_windows, length]
        return {
            k: tf.RaggedTensor.from_value_rowids(v, document, nrows=texts).to_tensor(shape=shape)
            for k, v in rows.items()
        }

    def _pack(self, text, pair):
        segments = (text,) if pair is None else (text, pair)
        token_ids, segment_ids = self.packer(segments)
        padding_mask, _ = self.mask_packer(tuple(_ones_like(s) for s in segments))
        # int32, not bool: MirroredStrategy's AddN cannot sum booleans.
        padding_mask = tf.cast(padding_mask, tf.int32)
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }

    def position_keys(self, row_keys):
        # Windowed rows are [windows, length]: length buckets would cut the
        # windows axis. The model trims each batch's windows to their longest.
        return [] if self.windowed else super().position_keys(row_keys)

    def encode(self, batch):
        rows = dict(self.tokenize(batch))
        if "label" in batch:
            rows["labels"] = batch["label"]
        return rows

    def eval_dataset(self, examples, batch_size, data_config):
        # One row per example, tokenized once; length-bucketed, or in input
        # order for `packed_forward` (`data.packing`).
        return pipeline.encoded_eval_dataset(self, examples, batch_size, data_config)

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        backbone = backbones.Backbone.wrap(backbone)
        inputs = backbone.inputs()
        outputs = backbone.outputs(inputs)
        # `tokenize` always makes segment ids; a model without that input
        # (decoders) would map a 3-key dict onto its 2 inputs by position.
        inputs.setdefault("segment_ids", keras.Input((None,), dtype="int32", name="segment_ids"))
        pooled = heads.pool(
            outputs, inputs["padding_mask"], self.pooling(backbone), backbone.family == "decoder"
        )
        logits = heads.dense_head(pooled, self.num_outputs, self.config.dropout)
        if not self.windowed:
            return keras.Model(inputs, logits, name="text_classifier")
        outputs = {"logits": logits}
        if self.config.window_aggregation == "attention":
            outputs["score"] = keras.layers.Dense(1, name="window_score", dtype="float32")(pooled)
        window_model = keras.Model(inputs, outputs, name="window_classifier")
        return windowed_classifier.WindowedClassifier(
            window_model, self.config.window_aggregation, name="document_classifier"
        )

    def pooling(self, backbone):
        """The configured pooling, `auto` resolved for `backbone`."""
        if self.config.pooling != "auto":
            return self.config.pooling
        if backbone.family == "decoder":
            return "last"
        return "pooled" if backbone.has_pooler else "cls"

    def feature_model(self, model):
        """The pooled vector, and the head (dropout, dense) on it."""
        if self.windowed or type(self).build_model is not TextClassification.build_model:
            return None  # as for packing: only the model `build_model` makes here
        dropout, logits = model.get_layer("head_dropout"), model.get_layer("logits")
        features = keras.Model(model.input, dropout.input, name="frozen_features")
        vector = keras.Input(dropout.input.shape[1:], name="features")
        return features, keras.Model(vector, logits(dropout(vector)), name="head")

    def build_packed_model(self, model, backbone):
        if self.windowed or type(self).build_model is not TextClassification.build_model:
            # A document's windows must stay together; and the packed model
            # knows only the head `build_model` makes here, so a subclass with
            # a model of its own (a plugin) does not pack unless it says how.
            return None
        backbone = backbones.Backbone.wrap(backbone)
        return PackedTextClassifier(backbone, model, self.pooling(backbone))

    def packed_forward(self, model, backbone):
        if self.windowed or not backbones.Backbone.wrap(backbone).supports_packing:
            return None
        packed = self.build_packed_model(model, backbone)
        return None if packed is None else pipeline.packed_request_call(model, packed)

    def serving_call(self, model, backbone):
        """Packs each request's texts into shared rows (backbones that can pack).

        One model call over rows of the request's longest text, with the
        short texts sharing rows, pads less than length buckets and makes a
        single call instead of one per bucket (BENCHMARKS.md). A request of
        one text needs no packing and skips it.
        """
        if self.windowed:
            return lambda features: model(features, training=False)
        return self.packed_forward(model, backbone) or super().serving_call(model, backbone)

    def loss(self, labels, outputs):
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=tf.cast(outputs, tf.float32)
        )
        if self.config.class_weights:
            weights = tf.constant(self.config.class_weights, tf.float32)
            per_example *= tf.gather(weights, labels)
        return per_example

    # -- distillation -----------------------------------------------------
    def teacher_columns(self, teacher, key="labels"):
        """Which column of the teacher's outputs each of this model's outputs takes."""
        if teacher["task"] != self.name:
            raise ConfigError(
                f"transfer.teacher is a {teacher['task']} model; a {self.name} student "
                f"needs a {self.name} teacher"
            )
        mine, theirs = list(getattr(self.config, key)), list(teacher.get(key) or [])
        if sorted(mine) != sorted(theirs):
            raise ConfigError(
                f"transfer.teacher predicts the {key} {theirs}; the student's are {mine} "
                f"(leave task.{self.name}.{key} empty to take the teacher's)"
            )
        return [theirs.index(name) for name in mine]

    def teacher_targets(self, teacher_outputs, teacher):
        """The teacher's logits, up to a constant: log-probabilities."""
        probabilities = np.asarray(teacher_outputs["probabilities"], np.float64)
        probabilities = probabilities[:, self.teacher_columns(teacher)]
        return np.log(np.maximum(probabilities, 1e-12)).astype(np.float32)

    def distillation_loss(self, targets, outputs, temperature):
        """`T^2 KL(softmax(t / T) || softmax(s / T))`, Hinton et al. (2015)."""
        teacher = tf.nn.log_softmax(tf.cast(targets, tf.float32) / temperature)
        student = tf.nn.log_softmax(tf.cast(outputs, tf.float32) / temperature)
        kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
        return temperature**2 * kl

    # -- answers ----------------------------------------------------------
    def postprocess(self, outputs):
        probabilities = tf.nn.softmax(tf.cast(outputs, tf.float32), axis=-1)
        label_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        names = tf.gather(tf.constant(self.labels), label_ids)
        return {"probabilities": probabilities, "label_ids": label_ids, "labels": names}

    def evaluate(self, outputs, examples):
        predictions = np.argmax(np.stack(outputs), axis=-1)
        return classification_metrics.report(self.encode_labels(examples), predictions, self.labels)

    def serving_inputs(self):
        inputs = {"text": tf.TensorSpec([None], tf.string, name="text")}
        if self.text_pair:
            inputs["text_pair"] = tf.TensorSpec([None], tf.string, name="text_pair")
        return inputs
