"""Masked language modelling: continued pretraining of an encoder on unlabelled text.

Domain- and task-adaptive pretraining (Gururangan et al., 2020): before
fine-tuning on few labels, a BERT-style backbone keeps training with its
own objective on text of the target domain. Documents (a `.txt` file, a
folder of files, or a text column of any supported format; labels are
ignored) are cut into rows of `max_seq_length` (`[CLS] ... [SEP]`; a long
document becomes several rows). keras-hub's `MaskedLMMaskGenerator` picks
`mask_rate` of the tokens of every training batch anew (dynamic masking, as
RoBERTa): `mask_token_rate` of those become `[MASK]`, `random_token_rate` a
random token, the rest stay. Held-out data are masked once and scored by
mean NLL per masked token, perplexity and accuracy.

At the end of training the backbone of the best checkpoint is written as a
keras-hub preset folder, `<model_dir>/backbone/`, that any config names as
`backbone.spec`. The export's `serving_default` fills masks: texts with
`[MASK]` in, the `top_k` tokens for each mask out.

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.masked_lm import MaskedLM, MaskedLMConfig
>>> tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(backbones.default_path())
>>> task = MaskedLM(MaskedLMConfig(max_seq_length=5), tokenizer)
>>> rows = tf.function(task.encode)({"text": tf.constant(["one two three four"])})
>>> rows["token_ids"].numpy().tolist()  # [CLS] one two three [SEP], [CLS] four [SEP]
[[101, 2028, 2048, 2093, 102], [101, 2176, 102, 0, 0]]
"""

import dataclasses
import math

import keras_hub
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tftransfer import backbones, config_checks
from tftransfer.config_checks import bounded
from tftransfer.data import lm_readers, pipeline
from tftransfer.data.readers import DataError
from tftransfer.models import token_loss
from tftransfer.tasks import base, registry
from tftransfer.training import precision


@dataclasses.dataclass
class MaskedLMConfig(base.TaskConfig):
    """Masked language modelling on a BERT-style backbone.

    Attributes:
        max_seq_length: tokens per row, `[CLS]` and `[SEP]` included.
        mask_rate: fraction of the tokens chosen for prediction.
        mask_token_rate: of those, the fraction replaced by `[MASK]`.
        random_token_rate: of those, the fraction replaced by a random token
            (the rest are left as they are).
        max_predictions: predicted tokens per row at most (0 = `mask_rate *
            max_seq_length`, rounded up).
        whole_word_masking: choose words, not WordPiece tokens: every token
            of a chosen word is predicted (BERT's whole-word-masking
            models); `mask_rate` is then the fraction of words.
        top_k: tokens returned per mask by the export.
    """

    max_seq_length: int = bounded(128, low=3, high=base.MAX_SEQ_LENGTH)
    mask_rate: float = bounded(0.15, above=0.0, high=1.0)
    mask_token_rate: float = bounded(0.8, low=0.0, high=1.0)
    random_token_rate: float = bounded(0.1, low=0.0, high=1.0)
    max_predictions: int = bounded(0, low=0, high=base.MAX_SEQ_LENGTH)
    whole_word_masking: bool = False
    top_k: int = bounded(5, low=1, high=1000)

    def check(self, key):
        super().check(key)
        if self.mask_token_rate + self.random_token_rate > 1.0:
            raise config_checks.ConfigError(
                f"{key}: mask_token_rate + random_token_rate must be <= 1, got "
                f"{self.mask_token_rate} + {self.random_token_rate}"
            )


def _masked_lm_class(backbone):
    for cls in keras_hub.models.MaskedLM.__subclasses__():
        if type(backbone.model) is getattr(cls, "backbone_cls", None):
            return cls
    raise ValueError(
        f"task masked_lm: keras-hub has no masked LM for {type(backbone.model).__name__}; "
        "it needs a BERT-style encoder (GPT-style backbones use task causal_lm)"
    )


@registry.register("masked_lm", MaskedLMConfig)
class MaskedLM(base.Task):
    """Masked-token prediction on an encoder backbone (BERT, RoBERTa, ...).

    Args:
        config: a `MaskedLMConfig`.
        tokenizer: the backbone's keras-hub WordPiece tokenizer.
    """

    primary_metric = base.Metric("perplexity", lower_is_better=True)
    summary_metrics = ("masked_tokens", "accuracy", "nll", "perplexity")
    #: `fit` writes the trained backbone as a preset (`<model_dir>/backbone`).
    saves_backbone = True

    def __init__(self, config, tokenizer):
        super().__init__(config, tokenizer)
        self.cls_id = int(tokenizer.cls_token_id)
        self.sep_id = int(tokenizer.sep_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self.mask_id = int(tokenizer.mask_token_id)
        self.max_predictions = config.max_predictions or math.ceil(
            config.mask_rate * config.max_seq_length
        )
        self.masker = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size=tokenizer.vocabulary_size(),
            mask_selection_rate=config.mask_rate,
            mask_token_id=self.mask_id,
            mask_selection_length=self.max_predictions,
            unselectable_token_ids=[self.pad_id, self.cls_id, self.sep_id],
            mask_token_rate=config.mask_token_rate,
            random_token_rate=config.random_token_rate,
        )
        self._continuation = tf.constant(
            [token.startswith("##") for token in tokenizer.get_vocabulary()]
        )

    # -- data -------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        del need_labels  # the text is the label
        examples = lm_readers.read(spec)
        if examples.kind != lm_readers.TEXT:
            raise DataError(f"{spec.path}: masked_lm reads plain text, not {examples.kind} data")
        return examples

    def prepare(self, train_examples):
        del train_examples

    def raw_dataset(self, examples, with_labels=True):
        del with_labels
        return tf.data.Dataset.from_tensor_slices({"text": examples.texts})

    def _ids(self, texts):
        ids = self.tokenizer(texts)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        return tf.cast(ids, tf.int32)

    def _rows(self, ids):
        """Ragged `[documents, (tokens)]` -> padded rows of `[CLS] <= body tokens [SEP]`."""
        body = self.config.max_seq_length - 2
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        pieces = tf.maximum((lengths + body - 1) // body, 1)  # an empty document: one row
        first_row = tf.cumsum(pieces, exclusive=True)
        # Token i of a document goes to that document's row i // body.
        row_of_token = tf.ragged.range(lengths) // body + tf.expand_dims(first_row, 1)
        rows = tf.RaggedTensor.from_value_rowids(
            ids.flat_values,
            tf.cast(row_of_token.flat_values, tf.int64),
            nrows=tf.cast(tf.reduce_sum(pieces), tf.int64),
        )
        count = rows.nrows()
        cls = tf.fill([count, 1], self.cls_id)
        sep = tf.fill([count, 1], self.sep_id)
        rows = tf.concat([cls, rows, sep], axis=1)
        length = self.config.max_seq_length
        token_ids = rows.to_tensor(self.pad_id, shape=[None, length])
        return {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.ones_like(rows).to_tensor(0, shape=[None, length]),
            "labels": tf.zeros([count], tf.int32),  # masks are drawn per batch
        }

    def encode(self, batch):
        """Each document cut into rows of `max_seq_length - 2` tokens, `[CLS] ... [SEP]`."""
        return self._rows(self._ids(batch["text"]))

    def _whole_word_mask(self, token_ids):
        """keras-hub's generator output, choosing whole words.

        keras-hub's generator selects single tokens; tf-text's
        `mask_language_model` (which it wraps) selects whole items of a
        `[batch, (words), (tokens)]` tensor, so tokens are grouped into words
        here (a word starts at every token without the `##` prefix).
        """
        cfg = self.config
        lengths = tf.reduce_sum(tf.cast(token_ids != self.pad_id, tf.int32), axis=1)
        tokens = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
        starts = tf.logical_not(tf.gather(self._continuation, tokens.flat_values))
        word_of_token = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        words = tf.RaggedTensor.from_value_rowids(tokens.flat_values, word_of_token)
        words_per_row = tf.math.segment_sum(tf.cast(starts, tf.int64), tokens.value_rowids())
        words = tf.RaggedTensor.from_row_lengths(words, words_per_row)
        masked, positions, ids = tf_text.mask_language_model(
            words,
            item_selector=tf_text.RandomItemSelector(
                max_selections_per_batch=self.max_predictions,
                selection_rate=cfg.mask_rate,
                unselectable_ids=[self.pad_id, self.cls_id, self.sep_id],
            ),
            mask_values_chooser=tf_text.MaskValuesChooser(
                self.tokenizer.vocabulary_size(),
                self.mask_id,
                mask_token_rate=cfg.mask_token_rate,
                random_token_rate=cfg.random_token_rate,
            ),
        )
        # A row's last chosen word may run past max_predictions tokens: its
        # extra tokens stay masked in the input but are not scored.
        shape = [None, self.max_predictions]
        return {
            "token_ids": masked.to_tensor(  # tf-text returns the words merged
                self.pad_id, shape=tf.shape(token_ids, out_type=tf.int64)
            ),
            "mask_positions": positions.to_tensor(0, shape=shape),
            "mask_ids": ids.to_tensor(0, shape=shape),
            "mask_weights": tf.ones_like(positions, tf.float32).to_tensor(0.0, shape=shape),
        }

    def mask(self, features):
        """Features with `mask_positions` and their `mask_labels` (-1: no prediction)."""
        if self.config.whole_word_masking:
            masked = self._whole_word_mask(features["token_ids"])
        else:
            masked = self.masker(features["token_ids"])
        out = dict(features)
        out["token_ids"] = tf.cast(masked["token_ids"], tf.int32)
        out["mask_positions"] = tf.cast(masked["mask_positions"], tf.int32)
        out["mask_labels"] = tf.where(
            masked["mask_weights"] > 0, tf.cast(masked["mask_ids"], tf.int32), -1
        )
        return out

    def training_batch(self, features, labels):
        del labels
        features = self.mask(features)
        return features, features.pop("mask_labels")

    def eval_dataset(self, examples, batch_size, data_config):
        """Encoded rows, masked once (cached: every evaluation scores the same masks)."""
        rows = pipeline.encoded_dataset(self, examples, data_config)
        rows = rows.map(lambda row: {k: v for k, v in row.items() if k != "labels"})
        rows = rows.enumerate().map(lambda i, row: (row, i))
        lengths = pipeline.boundaries(data_config, self.config.max_seq_length)
        keys = list(rows.element_spec[0])
        dataset = pipeline.bucket(rows, batch_size, lengths, keys, drop_remainder=False)
        dataset = dataset.map(lambda features, index: (self.mask(features), index))
        return dataset.cache().prefetch(data_config.prefetch)

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        backbone = backbones.Backbone.wrap(backbone)
        return _masked_lm_class(backbone)(backbone=backbone.model, preprocessor=None)

    @precision.reads_compute_dtype  # row_nll casts chunks of logits
    def loss(self, labels, outputs):
        return token_loss.per_row_loss(labels, outputs)

    def _inputs(self, features):
        names = ("token_ids", "segment_ids", "padding_mask", "mask_positions")
        return {k: features[k] for k in names}

    def forward(self, model, features):
        labels = features["mask_labels"]
        logits = model(self._inputs(features), training=False)
        nll, mask = token_loss.token_nll(labels, logits)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return {
            "nll": tf.reduce_sum(nll, axis=1),
            "tokens": tf.reduce_sum(mask, axis=1),
            "correct": tf.reduce_sum(hits * mask, axis=1),
        }

    # -- evaluation ---------------------------------------------------------
    def evaluate(self, outputs, examples):
        def total(key):
            return float(np.sum([o[key] for o in outputs], dtype=np.float64))

        tokens = max(total("tokens"), 1.0)
        mean = total("nll") / tokens
        return {
            "examples": len(examples),
            "rows": len(outputs),
            "masked_tokens": int(total("tokens")),
            "nll": mean,
            "perplexity": math.exp(min(mean, 700.0)),
            "accuracy": total("correct") / tokens,
        }

    # -- serving ------------------------------------------------------------
    def serving_inputs(self):
        return {"text": tf.TensorSpec([None], tf.string, name="text")}

    def tokenize(self, inputs):
        """Texts with `[MASK]` -> model features; every mask is a prediction position.

        A tokenizer may split `[MASK]` into `[`, `mask`, `]` (keras-hub's do
        unless told `special_tokens_in_strings`), so the text is cut at each
        mask, the parts tokenized, and mask ids put between.
        """
        parts = tf.strings.split(inputs["text"], self.tokenizer.mask_token)
        pieces = self._ids(parts.flat_values)
        last = tf.cast(parts.row_lengths() - 1, tf.int32)
        # Every part but a text's last is followed by one mask.
        follows = tf.ones_like(pieces.row_lengths(), tf.int32) - tf.scatter_nd(
            tf.expand_dims(tf.cast(parts.row_starts(), tf.int32) + last, 1),
            tf.ones_like(last),
            tf.shape(pieces.row_lengths(), out_type=tf.int32),
        )
        masks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(follows)], self.mask_id), tf.cast(follows, tf.int64)
        )
        pieces = tf.concat([pieces, masks], axis=1)
        ids = tf.RaggedTensor.from_row_lengths(pieces, parts.row_lengths()).merge_dims(1, 2)
        tf.debugging.assert_less_equal(
            tf.cast(ids.row_lengths(), tf.int32),
            self.config.max_seq_length - 2,
            message=f"fill-mask texts must fit in max_seq_length={self.config.max_seq_length}",
        )
        rows = self._rows(ids)
        rows.pop("labels")
        is_mask = tf.equal(rows["token_ids"], self.mask_id)
        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(tf.shape(is_mask)[1]), tf.shape(is_mask)), is_mask
        )
        rows["mask_positions"] = positions.to_tensor(0, shape=[None, self.max_predictions])
        rows["mask_count"] = tf.minimum(positions.row_lengths(), self.max_predictions)
        return rows

    def serving_call(self, model, backbone):
        del backbone

        def call(features):
            logits = model(self._inputs(features), training=False)
            return {"logits": logits, "mask_count": features["mask_count"]}

        return call

    def postprocess(self, outputs):
        """Per text: `[masks, top_k]` tokens and probabilities (masks beyond the text's: empty)."""
        probabilities = tf.nn.softmax(tf.cast(outputs["logits"], tf.float32), axis=-1)
        top = tf.math.top_k(probabilities, k=self.config.top_k)
        valid = tf.sequence_mask(outputs["mask_count"], self.max_predictions)
        tokens = tf.gather(tf.constant(self.tokenizer.get_vocabulary()), top.indices)
        tokens = tf.where(valid[:, :, None], tokens, "")
        return {
            "tokens": tokens,
            "probabilities": tf.where(valid[:, :, None], top.values, 0.0),
            "mask_count": tf.cast(outputs["mask_count"], tf.int32),
        }

    def export_metadata(self):
        return {"mask_token": self.tokenizer.mask_token, "top_k": self.config.top_k}
