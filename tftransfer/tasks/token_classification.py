"""Token classification: named-entity recognition on IOB2 tags.

Each word is cut into subwords by the backbone's tokenizer; its tag goes on
its first subword (or on all of them, with `label_all_subwords`) and the
other positions are ignored by the loss. Sentences longer than the model's
sequence length become overlapping windows (`data.word_windows`), and each
word is predicted once, from the window where it has the most context. With
`document_context`, the windows run over whole documents instead of single
sentences.

The exported model takes raw text: it splits words with character offsets
(`data.word_splitter`), tags them, and returns entity spans
(`text.entity_spans`), all inside the graph. A second signature,
`tag_tokens`, tags pre-split tokens.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.token_classification import (
...     TokenClassification,
...     TokenClassificationConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = TokenClassificationConfig(labels=["O", "B-PER", "I-PER"])
>>> task = TokenClassification(cfg, tokenizer)
>>> model = task.build_model(backbone)
>>> words = tf.ragged.constant([["Alice", "visited", "Zürich"]])
>>> task.word_probabilities(model, words).shape  # per word, a probability per tag
TensorShape([1, None, 3])
"""

import itertools

import keras
import numpy as np
import tensorflow as tf

from tftransfer import backbones
from tftransfer.data import (
    pipeline,
    tag_schemes,
    tagged_readers,
    word_casing,
    word_splitter,
    word_windows,
)
from tftransfer.data.readers import DataError
from tftransfer.metrics import entity as entity_metrics
from tftransfer.models import heads
from tftransfer.models.packed_token_classifier import PackedTokenClassifier
from tftransfer.tasks import base, registry
from tftransfer.tasks.token_classification_config import TokenClassificationConfig
from tftransfer.text import entity_spans, iob2_decoder, tag_windows
from tftransfer.text.tag_windows import IGNORE
from tftransfer.text.word_tokenizer import WordTokenizer

#: width of the casing embedding added next to uncased backbones' outputs.
CASING_DIM = 16


@registry.register("token_classification", TokenClassificationConfig)
class TokenClassification(base.Task):
    """Tags every word of a sentence with an IOB2 tag from `config.labels`.

    Args:
        config: a `TokenClassificationConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
    """

    primary_metric = base.Metric("f1")
    summary_metrics = ("sentences", "precision", "recall", "f1")

    def __init__(self, config, tokenizer):
        super().__init__(config, tokenizer)
        self.words = WordTokenizer(tokenizer)
        if config.casing_features is None:
            config.casing_features = self.words.lowercase  # params.yaml records the choice
        self.casing = config.casing_features
        window = config.max_seq_length - 2
        stride = config.window_stride or max(1, window // 2)
        self.tagging = tag_windows.TagWindows(self.words, window, stride, self.casing)

    @property
    def labels(self):
        return list(self.config.labels)

    # -- data -------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        if spec.format in ("csv", "tsv"):
            raise DataError(
                f"{spec.path}: token classification reads CoNLL or JSONL files or a "
                f"TFDS dataset (format `conll`, `jsonl` or `tfds`), not `{spec.format}`"
            )
        return tagged_readers.read_spec(spec, need_tags=need_labels)

    def prepare(self, train_examples):
        if not self.config.labels:
            types = tag_schemes.entity_types(train_examples.tags)
            self.config.labels = tag_schemes.iob2_labels(types)
        for label in self.labels:
            prefix, _ = tag_schemes.split_tag(label)
            if prefix not in ("O", "B", "I"):
                raise DataError(f"task.token_classification.labels: `{label}` is not an IOB2 tag")
        if "O" not in self.labels or len(self.labels) < 2:
            raise DataError(
                f"token classification needs `O` and at least one entity tag, found {self.labels}"
            )
        self.encode_tags(train_examples)

    def encode_tags(self, examples):
        """Maps IOB2 tags to ids; a tag the model does not know is an error."""
        return examples.tag_ids(self.labels)

    def validate_examples(self, examples):
        self.encode_tags(examples)

    def _row_lengths(self, examples):
        """Words per dataset row: per sentence, or per document."""
        lengths = [len(t) for t in examples.tokens]
        if not self.config.document_context:
            return lengths
        documents = examples.documents or range(len(lengths))
        runs = itertools.groupby(zip(documents, lengths), key=lambda pair: pair[0])
        return [sum(length for _, length in run) for _, run in runs]

    def raw_dataset(self, examples, with_labels=True):
        lengths = self._row_lengths(examples)
        flat = [w for words in examples.tokens for w in words]
        columns = {"words": tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.string), lengths)}
        if with_labels:
            ids = self.encode_tags(examples)
            columns["tags"] = tf.RaggedTensor.from_row_lengths(
                np.concatenate(ids) if ids else np.zeros([0], np.int32), lengths
            )
        return tf.data.Dataset.from_tensor_slices(columns)

    def sentence_outputs(self, outputs, examples):
        """Per-row word outputs (documents, maybe) -> one array per sentence."""
        if not self.config.document_context:
            return outputs
        lengths = [len(t) for t in examples.tokens]
        flat = np.concatenate(outputs) if outputs else np.zeros([0, len(self.labels)])
        if len(flat) != sum(lengths):
            raise ValueError(f"{len(flat)} predicted words for {sum(lengths)} words")
        return np.split(flat, np.cumsum(lengths)[:-1])

    def encode(self, batch):
        """Sentences with tags -> training windows with per-subword labels."""
        words, length = batch["words"], self.config.max_seq_length
        windows = self.tagging.split(words)
        features = self.tagging.features(windows, words, length)
        continuation = None
        if self.config.label_all_subwords:
            continuation = tag_windows.continuation_table(self.labels)
        features["labels"] = self.tagging.labels(windows, batch["tags"], length, continuation)
        return features

    def position_keys(self, row_keys):
        return list(row_keys)  # labels are per subword too

    def split_words(self, text):
        """Raw text -> `(words, byte starts, byte ends)`, as serving splits it."""
        return word_splitter.split(text, self.words.split_on_cjk)

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        backbone = backbones.Backbone.wrap(backbone)
        inputs = backbone.inputs()
        sequence = backbone.outputs(inputs)["sequence_output"]
        if self.casing:
            inputs["casing_ids"] = keras.Input(shape=(None,), dtype="int32", name="casing_ids")
            casing = keras.layers.Embedding(
                word_casing.NUM_CLASSES, CASING_DIM, name="casing_embedding"
            )(inputs["casing_ids"])
            sequence = keras.layers.Concatenate(name="with_casing")([sequence, casing])
        logits = heads.dense_head(sequence, len(self.labels), self.config.dropout)
        return keras.Model(inputs, logits, name="token_classifier")

    def build_packed_model(self, model, backbone):
        if self.casing:
            return None  # casing ids are one more input, which `packing.pack` does not place
        return PackedTokenClassifier(backbone, model)

    def loss(self, labels, outputs):
        """Mean over this replica's labelled subwords, as a per-window loss.

        The trainer averages per-example losses over the global batch; scaling
        by rows / labelled tokens makes that the token mean (per replica, then
        averaged over replicas, as Model Garden's tagging task does).
        """
        labels = tf.cast(labels, tf.int32)
        mask = tf.cast(tf.not_equal(labels, IGNORE), tf.float32)
        per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.maximum(labels, 0), logits=tf.cast(outputs, tf.float32)
        )
        per_window = tf.reduce_sum(per_token * mask, axis=1)
        rows = tf.cast(tf.shape(labels)[0], tf.float32)
        return per_window * rows / tf.maximum(tf.reduce_sum(mask), 1.0)

    def word_probabilities(self, model, words, pieces=None, window_call=None):
        """Ragged [batch, (words)] strings -> ragged [batch, (words), tags].

        `pieces`: the words' subword ids, when tokenized already
        (`pretokenize`). The windows run through `window_call` (see
        `packed_call`), else through the model by length bucket.
        """
        windows = self.tagging.split(words, pieces)
        features = self.tagging.features(windows, words)
        if window_call is None:
            logits = pipeline.bucketed_call(model, features, self.serving_cuts())
        else:
            logits = window_call(features)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        # Position 0 is [CLS]; the windows' subwords start at 1.
        return word_windows.merge(probabilities[:, 1:], windows, words.row_splits)

    def pretokenize(self, batch):
        """A raw evaluation batch plus its words' subword ids, computed once per run."""
        return {**batch, "pieces": self.tagging.words.word_pieces(batch["words"])}

    def forward(self, model, features):
        return self.word_probabilities(model, features["words"], features.get("pieces"))

    def packed_forward(self, model, backbone):
        window_call = self.packed_call(model, backbone)
        if window_call is None:
            return None
        return lambda features: self.word_probabilities(
            model, features["words"], features.get("pieces"), window_call
        )

    # -- answers ----------------------------------------------------------
    def postprocess(self, probabilities):
        """Per-word probabilities (ragged) -> tag ids, tags and scores.

        A word's score is the probability of its decoded tag.
        """
        if self.config.decoding == "constrained":
            tag_ids = iob2_decoder.decode(probabilities, self.labels)
        else:
            tag_ids = tf.ragged.map_flat_values(
                tf.argmax, probabilities, axis=-1, output_type=tf.int32
            )
        scores = tag_ids.with_flat_values(
            tf.gather(probabilities.flat_values, tag_ids.flat_values, batch_dims=1)
        )
        tags = tf.ragged.map_flat_values(tf.gather, tf.constant(self.labels), tag_ids)
        return {"tag_ids": tag_ids, "tags": tags, "scores": scores}

    def predicted_tags(self, outputs, examples):
        outputs = self.sentence_outputs(outputs, examples)
        if not outputs:
            return []
        probabilities = tf.RaggedTensor.from_row_lengths(
            np.concatenate(outputs).astype(np.float32), [len(p) for p in outputs]
        )
        tag_ids = self.postprocess(probabilities)["tag_ids"].to_list()
        return [[self.labels[i] for i in sentence] for sentence in tag_ids]

    def evaluate(self, outputs, examples):
        predicted = self.predicted_tags(outputs, examples)
        return entity_metrics.report(examples.tags, predicted, strict=self.config.strict)

    def write_predictions(self, outputs, examples, path):
        """Writes `token gold predicted` lines for conlleval to `<path>.txt`."""
        path += ".txt"
        entity_metrics.write_conll(
            path, examples.tokens, examples.tags, self.predicted_tags(outputs, examples)
        )
        return path

    def serving_inputs(self):
        return {"text": tf.TensorSpec([None], tf.string, name="text")}

    def packed_call(self, model, backbone):
        """A request's windows packed into shared rows, or None where packing cannot run.

        As the text classifier serves: one model call over rows of the longest
        window with the short ones sharing rows pads less than length buckets
        and makes one call instead of one per bucket (BENCHMARKS.md). A
        request of one window skips packing.
        """
        backbone = backbones.Backbone.wrap(backbone)
        if self.casing or not backbone.supports_packing:
            return None
        return pipeline.packed_request_call(model, PackedTokenClassifier(backbone, model))

    def serving_functions(self, model, backbone):
        window_call = self.packed_call(model, backbone)

        def entities(text):
            words, starts, ends = self.split_words(text)
            answers = self.postprocess(self.word_probabilities(model, words, None, window_call))
            spans = entity_spans.decode(
                answers["tag_ids"], answers["scores"], self.labels, self.config.strict
            )
            return entity_spans.locate(text, starts, ends, spans)

        def tag_tokens(tokens):
            # Dense [batch, max tokens] with "" after the last token: serving
            # signatures cannot take ragged tensors.
            words = tf.RaggedTensor.from_tensor(tokens, padding="")
            answers = self.postprocess(self.word_probabilities(model, words, None, window_call))
            return {
                "tags": answers["tags"].to_tensor(""),
                "tag_ids": answers["tag_ids"].to_tensor(-1),
                "scores": answers["scores"].to_tensor(0.0),
                "num_tokens": tf.cast(words.row_lengths(), tf.int32),
            }

        return {
            "serving_default": (entities, self.serving_inputs()),
            "tag_tokens": (
                tag_tokens,
                {"tokens": tf.TensorSpec([None, None], tf.string, name="tokens")},
            ),
        }

    @classmethod
    def format_result(cls, record, outputs):
        result = dict(record)
        if "num_entities" in outputs:
            n = int(outputs["num_entities"])
            result["entities"] = [
                {
                    "text": outputs["entity_text"][i].decode("utf-8"),
                    "type": outputs["entity_type"][i].decode("utf-8"),
                    "start": int(outputs["entity_start"][i]),
                    "end": int(outputs["entity_end"][i]),
                    "score": round(float(outputs["entity_score"][i]), 6),
                }
                for i in range(n)
            ]
        else:
            n = int(outputs["num_tokens"])
            result["tags"] = [t.decode("utf-8") for t in outputs["tags"][:n]]
            result["scores"] = [round(float(s), 6) for s in outputs["scores"][:n]]
        return result
