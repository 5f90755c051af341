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
(`tasks.entity_spans`), all inside the graph. A second signature,
`tag_tokens`, tags pre-split tokens.

Example:

```python
from tftransfer import backbones, configs
from tftransfer.tasks.token_classification import TokenClassification

backbone, tokenizer = backbones.load("default")
cfg = configs.TokenClassificationConfig(labels=["O", "B-PER", "I-PER"])
task = TokenClassification(cfg, tokenizer)
model = task.build_model(backbone)
```
"""

import itertools

import keras
import numpy as np
import tensorflow as tf

from tftransfer.data import (
    tag_schemes,
    tagged_readers,
    word_casing,
    word_splitter,
    word_windows,
)
from tftransfer.data.readers import DataError
from tftransfer.metrics import entity as entity_metrics
from tftransfer.tasks import base, entity_spans, iob2_decoder
from tftransfer.tasks.text_classification import FEATURES
from tftransfer.tasks.word_tokenizer import WordTokenizer

#: label of positions the loss ignores (special tokens, later subwords).
IGNORE = -1
#: width of the casing embedding added next to uncased backbones' outputs.
CASING_DIM = 16


@base.register("token_classification")
class TokenClassification(base.Task):
    """Tags every word of a sentence with an IOB2 tag from `config.labels`.

    Args:
        config: a `configs.TokenClassificationConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
        text_pair: must be False (there are no sentence pairs in tagging).
    """

    primary_metric = "f1"
    encodes_examples = True
    labels_per_position = True

    def __init__(self, config, tokenizer, text_pair=False):
        if text_pair:
            raise ValueError("token classification has no sentence pairs; unset text_pair_column")
        super().__init__(config, tokenizer)
        self.text_pair = False
        self.words = WordTokenizer(tokenizer)
        self.window = config.max_seq_length - 2
        self.stride = config.window_stride or max(1, self.window // 2)
        self.casing = config.casing_features
        if self.casing is None:
            self.casing = self.words.lowercase
            config.casing_features = self.casing  # params.yaml records the choice
        self.features = FEATURES + (("casing_ids",) if self.casing else ())

    @property
    def labels(self):
        return list(self.config.labels)

    # -- data -------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        if spec.path.startswith("tfds:") or spec.format in ("csv", "tsv", "tfds"):
            raise DataError(
                f"{spec.path}: token classification reads CoNLL or JSONL files "
                f"(format `conll` or `jsonl`), not `{spec.format or 'tfds'}`"
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
        index = {name: i for i, name in enumerate(self.labels)}
        out = []
        for s, tags in enumerate(examples.tags):
            ids = [index.get(tag, -1) for tag in tags]
            if -1 in ids:
                t = ids.index(-1)
                raise DataError(
                    f"{examples.where(s, t)}: unknown tag `{tags[t]}` for token "
                    f"`{examples.tokens[s][t]}` (the model knows: {', '.join(self.labels)})"
                )
            out.append(np.asarray(ids, np.int32))
        return out

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

    def _windows(self, words):
        """Ragged [batch, (words)] strings -> subword windows."""
        pieces = self.words.pieces(words.flat_values)
        pieces = tf.RaggedTensor.from_row_splits(pieces, words.row_splits)
        return word_windows.split(pieces, self.window, self.stride)

    def _global_words(self, windows):
        """Index of each window subword's word among the batch's words."""
        sentence = tf.gather(windows.sentence, windows.subword_ids.value_rowids())
        return tf.gather(windows.word_row_starts, sentence) + windows.word.flat_values

    def _pack(self, windows, words, length=None):
        """Adds the special tokens and pads windows to dense features."""
        ids = windows.subword_ids
        n = ids.nrows()

        def column(value, dtype=tf.int32):
            return tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.cast(value, dtype)))

        def pack(middle, start, end, pad):
            return tf.concat([column(start), middle, column(end)], axis=1).to_tensor(
                pad, shape=[None, length]
            )

        token_ids = pack(ids, self.words.start_id, self.words.end_id, self.words.pad_id)
        features = {
            "token_ids": token_ids,
            "segment_ids": pack(tf.zeros_like(ids), 0, 0, 0),
            "padding_mask": pack(tf.ones_like(ids), 1, 1, 0),
        }
        if self.casing:
            casing = tf.gather(word_casing.classify(words.flat_values), self._global_words(windows))
            features["casing_ids"] = pack(ids.with_flat_values(casing), 0, 0, 0)
        return features

    def _continuation_table(self):
        # The tag a continuation subword gets: B-X -> I-X, others unchanged.
        index = {name: i for i, name in enumerate(self.labels)}
        table = []
        for i, label in enumerate(self.labels):
            prefix, kind = tag_schemes.split_tag(label)
            table.append(index.get(f"I-{kind}", i) if prefix == "B" else i)
        return tf.constant(table, tf.int32)

    def encode(self, batch):
        """Sentences with tags -> training windows with per-subword labels."""
        words, tags = batch["words"], batch["tags"]
        windows = self._windows(words)
        features = self._pack(windows, words, self.config.max_seq_length)
        global_word = self._global_words(windows)
        word_tag = tf.gather(tf.cast(tags.flat_values, tf.int32), global_word)
        first = windows.first.flat_values
        if self.config.label_all_subwords:
            rest = tf.gather(self._continuation_table(), word_tag)
        else:
            rest = tf.fill(tf.shape(word_tag), IGNORE)
        labels = windows.subword_ids.with_flat_values(tf.where(first, word_tag, rest))
        n = labels.nrows()
        edge = tf.RaggedTensor.from_tensor(tf.fill([n, 1], IGNORE))
        labels = tf.concat([edge, labels, edge], axis=1)
        features["labels"] = labels.to_tensor(IGNORE, shape=[None, self.config.max_seq_length])
        return features

    def tokenize(self, inputs):
        """Raw text -> words (with offsets); the model input is made per window."""
        return word_splitter.split(inputs["text"], self.words.split_on_cjk)

    def preprocess(self, batch):
        return {"words": batch["words"]}, None

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name) for name in self.features
        }
        sequence = backbone({k: inputs[k] for k in FEATURES})["sequence_output"]
        if self.casing:
            casing = keras.layers.Embedding(
                word_casing.NUM_CLASSES, CASING_DIM, name="casing_embedding"
            )(inputs["casing_ids"])
            sequence = keras.layers.Concatenate(name="with_casing")([sequence, casing])
        x = keras.layers.Dropout(self.config.dropout, name="head_dropout")(sequence)
        logits = keras.layers.Dense(
            len(self.labels),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="logits",
        )(x)
        return keras.Model(inputs, logits, name="token_classifier")

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

    def word_probabilities(self, model, words):
        """Ragged [batch, (words)] strings -> ragged [batch, (words), tags]."""
        windows = self._windows(words)
        logits = model(self._pack(windows, words), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        # Position 0 is [CLS]; the windows' subwords start at 1.
        return word_windows.merge(probabilities[:, 1:], windows, words.row_splits)

    def forward(self, model, features):
        return self.word_probabilities(model, features["words"])

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

    def serving_functions(self, model):
        def entities(text):
            words, starts, ends = self.tokenize({"text": text})
            answers = self.postprocess(self.word_probabilities(model, words))
            spans = entity_spans.decode(
                answers["tag_ids"], answers["scores"], self.labels, self.config.strict
            )
            return entity_spans.locate(text, starts, ends, spans)

        def tag_tokens(tokens):
            # Dense [batch, max tokens] with "" after the last token: serving
            # signatures cannot take ragged tensors.
            words = tf.RaggedTensor.from_tensor(tokens, padding="")
            answers = self.postprocess(self.word_probabilities(model, words))
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
