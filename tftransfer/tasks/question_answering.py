"""Extractive question answering (SQuAD v1.1 and v2.0).

The context is split into words with offsets (`data.word_splitter`), each
word into subwords, and the subwords into windows of what the question leaves
of `max_seq_length`, starting every `doc_stride` subwords
(`data.word_windows`). A window is `[CLS] question [SEP] context piece [SEP]`.
Training labels are the start and end positions of the first gold answer in
the window, or [CLS] when the window does not hold the whole answer (and for
unanswerable questions).

Answer selection runs in the graph, for training-time evaluation and the
export alike: in every window, every (start, end) pair inside the context
with end - start < `max_answer_length` and a start subword that this window
scores with the most context; the best pair over all windows of a question
wins. Answers are whole words, cut from the original context by character
offsets, so they are exact substrings of it. For SQuAD v2.0 the no-answer
score is the smallest [CLS] score over the windows (as in BERT), and the
question is left unanswered when it beats the best span by more than
`null_score_threshold`, which training sets to the best value on validation.

Example:

>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.question_answering import (
...     QuestionAnswering,
...     QuestionAnsweringConfig,
... )
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = QuestionAnsweringConfig(max_seq_length=64, max_query_length=16, doc_stride=16)
>>> task = QuestionAnswering(cfg, tokenizer)
>>> model = task.build_model(backbone)  # an untrained head: any span, but a real one
>>> context = "Alice flew to Zürich in May."
>>> answer = task.answer(model, tf.constant(["Where did Alice fly?"]), tf.constant([context]))
>>> start, end = int(answer["answer_start"][0]), int(answer["answer_end"][0])
>>> context[start:end] == answer["answer_text"][0].numpy().decode()
True
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer import backbones, config_checks
from tftransfer.config_checks import bounded
from tftransfer.data import packing, pipeline, squad_readers, word_splitter
from tftransfer.data.readers import DataError
from tftransfer.metrics import squad as squad_metrics
from tftransfer.models import heads
from tftransfer.models.packed_span_finder import PackedSpanFinder
from tftransfer.tasks import base, registry
from tftransfer.text import span_answers
from tftransfer.text.span_answers import NEG_INF
from tftransfer.text.word_tokenizer import WordTokenizer
from tftransfer.training import distribute

SERVING_OUTPUTS = ("answer_text", "answer_start", "answer_end", "score", "no_answer_score")


@dataclasses.dataclass
class QuestionAnsweringConfig(base.TaskConfig):
    """Extractive question answering (SQuAD v1.1 and v2.0).

    Attributes:
        max_seq_length: tokens per window: [CLS] question [SEP] context
            piece [SEP].
        max_query_length: questions are cut to this many subwords.
        doc_stride: subwords between the starts of consecutive context
            windows; each context subword is scored in the window where it
            has the most context.
        max_answer_length: longest answer, in subwords.
        version_2_with_negative: questions may have no answer (SQuAD v2.0);
            set from the training data.
        null_score_threshold: (v2.0) answer "" when the no-answer score
            exceeds the best span's score by more than this. Training sets
            it to the value that maximises F1 on validation.
        dropout: dropout before the span layer.
    """

    max_seq_length: int = bounded(384, low=5, high=base.MAX_SEQ_LENGTH)
    max_query_length: int = bounded(64, low=1, high=base.MAX_SEQ_LENGTH)
    doc_stride: int = bounded(128, low=1)
    max_answer_length: int = bounded(30, low=1, high=base.MAX_SEQ_LENGTH)
    version_2_with_negative: bool = False
    null_score_threshold: float = bounded(0.0)
    dropout: float = bounded(0.1, low=0.0, below=1.0)

    def check(self, key):
        super().check(key)
        room = self.max_seq_length - 3 - self.max_query_length
        if room < 1 or not 1 <= self.doc_stride <= room:
            raise config_checks.ConfigError(
                f"{key}: need 1 <= doc_stride <= max_seq_length - 3 - "
                f"max_query_length (= {room}), got doc_stride {self.doc_stride}"
            )


@registry.register("question_answering", QuestionAnsweringConfig)
class QuestionAnswering(base.Task):
    """Finds the answer to a question as a span of its context.

    Args:
        config: a `QuestionAnsweringConfig`.
        tokenizer: the backbone's keras-hub tokenizer.
    """

    primary_metric = base.Metric("f1")
    summary_metrics = ("questions", "exact_match", "f1")
    input_text_fields = ("question", "context")

    def __init__(self, config, tokenizer):
        super().__init__(config, tokenizer)
        self.words = WordTokenizer(tokenizer)

    # -- data -------------------------------------------------------------
    @classmethod
    def read(cls, spec, need_labels=True):
        if spec.format in ("csv", "tsv", "conll"):
            raise DataError(
                f"{spec.path}: question answering reads SQuAD JSON or JSONL files or a "
                f"TFDS dataset (format `squad`, `jsonl` or `tfds`), not `{spec.format}`"
            )
        examples = squad_readers.read_spec(spec, need_labels)
        if examples.problems:
            logging.warning(f"{spec.path}:\n{examples.problems.summary()}")
        return examples

    def prepare(self, train_examples):
        if any(train_examples.is_impossible):
            self.config.version_2_with_negative = True

    def raw_dataset(self, examples, with_labels=True):
        columns = {"question": list(examples.questions), "context": list(examples.contexts)}
        if with_labels:
            # Questions whose every answer was dropped (text not in the
            # context, reported when read) are not trained on, neither as
            # answerable nor as unanswerable.
            keep = [bool(a) or imp for a, imp in zip(examples.answers, examples.is_impossible)]
            columns = {k: [v for v, ok in zip(vs, keep) if ok] for k, vs in columns.items()}
            starts, ends = [], []
            for answers, ok in zip(examples.answers, keep):
                if not ok:
                    continue
                text, start = answers[0] if answers else ("", -1)
                starts.append(start)
                ends.append(start + len(text) if answers else -1)
            columns["answer_start"] = np.asarray(starts, np.int64)
            columns["answer_end"] = np.asarray(ends, np.int64)
        return tf.data.Dataset.from_tensor_slices(columns)

    def pretokenize(self, batch):
        """Questions' ids, contexts' words, offsets and subword ids (evaluation: once a run)."""
        words, starts, ends = word_splitter.split(batch["context"], self.words.split_on_cjk)
        return {
            **batch,
            "question_ids": self.words.ids(batch["question"])[:, : self.config.max_query_length],
            "context_pieces": self.words.word_pieces(words),
            "word_starts": starts,
            "word_ends": ends,
        }

    def _split(self, question, context, tokenized=None):
        """Questions and contexts -> question ids, context words, windows.

        `tokenized`: their `pretokenize` output, when computed already.
        """
        tokenized = tokenized or self.pretokenize({"question": question, "context": context})
        q = tokenized["question_ids"]
        room = self.config.max_seq_length - 3 - q.row_lengths()
        windows = self.words.windows(
            None,
            room,
            self.config.doc_stride,
            max_window=self.config.max_seq_length - 3,
            pieces=tokenized["context_pieces"],
        )
        return q, (tokenized["word_starts"], tokenized["word_ends"]), windows

    def _pack(self, q, windows, length=None):
        """[CLS] question [SEP] context [SEP] -> dense features; context offsets."""
        wq = tf.gather(q, windows.sentence)
        features = self.words.frame_features([wq, windows.subword_ids], length)
        return features, wq.row_lengths() + 2

    def encode(self, batch):
        """Questions with one gold answer -> training windows and span labels."""
        q, (starts, ends), windows = self._split(batch["question"], batch["context"])
        features, offset = self._pack(q, windows, self.config.max_seq_length)
        context = batch["context"]
        char_start = word_splitter.to_char_offsets(context, starts)
        char_end = word_splitter.to_char_offsets(context, ends)
        sentence = char_start.value_rowids()
        answer_start = tf.gather(batch["answer_start"], sentence)
        answer_end = tf.gather(batch["answer_end"], sentence)
        # Words that overlap the answer's characters.
        covers = (
            (char_end.flat_values > answer_start)
            & (char_start.flat_values < answer_end)
            & (answer_start >= 0)
        )
        word = tf.ragged.range(char_start.row_lengths()).flat_values
        batch_size = char_start.nrows()
        big = tf.constant(2**40, tf.int64)
        first_word = tf.math.unsorted_segment_min(tf.where(covers, word, big), sentence, batch_size)
        last_word = tf.math.unsorted_segment_max(tf.where(covers, word, -1), sentence, batch_size)

        rows = windows.subword_ids.value_rowids()
        owner = tf.gather(windows.sentence, rows)
        subword_word = windows.word.flat_values
        position = tf.ragged.range(windows.subword_ids.row_lengths()).flat_values
        is_start = windows.first.flat_values & tf.equal(subword_word, tf.gather(first_word, owner))
        is_end = windows.last.flat_values & tf.equal(subword_word, tf.gather(last_word, owner))
        n = windows.subword_ids.nrows()
        start = tf.math.unsorted_segment_max(tf.where(is_start, position, -1), rows, n)
        end = tf.math.unsorted_segment_max(tf.where(is_end, position, -1), rows, n)
        inside = (start >= 0) & (end >= 0)
        start = tf.where(inside, start + offset, 0)
        end = tf.where(inside, end + offset, 0)
        features["labels"] = tf.cast(tf.stack([start, end], axis=1), tf.int32)
        return features

    # -- model ------------------------------------------------------------
    def build_model(self, backbone):
        backbone = backbones.Backbone.wrap(backbone)
        inputs = backbone.inputs()
        sequence = backbone.outputs(inputs)["sequence_output"]
        logits = heads.dense_head(sequence, 2, self.config.dropout, name="span_logits")
        # Padding can never be a start or an end.
        pad = 1.0 - keras.ops.cast(inputs["padding_mask"], logits.dtype)
        logits = logits - keras.ops.expand_dims(pad, -1) * 1e4
        return keras.Model(inputs, logits, name="span_finder")

    def build_train_model(self, model, backbone, strategy):
        """The span finder through `LeanBert` on `packing.one_per_row`, or None.

        A row per window, batches still by length bucket: 1.9-2.0× keras-hub's
        blocks in bfloat16, where shared rows were no faster (BENCHMARKS.md).
        As packing, on one replica and not on TPUs.
        """
        backbone = backbones.Backbone.wrap(backbone)
        if not backbone.lean_blocks or distribute.why_not_one_replica_paths(strategy):
            return None
        return PackedSpanFinder(backbone, model, one_per_row=True)

    def loss(self, labels, outputs):
        logits = tf.cast(outputs, tf.float32)
        labels = tf.cast(labels, tf.int32)
        start = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 0], logits[..., 0])
        end = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 1], logits[..., 1])
        return (start + end) / 2.0

    # -- answers ----------------------------------------------------------
    def serving_cuts(self):
        # Windows come in every length up to max_seq_length: buckets every 32
        # tokens pad 7% of SQuAD's tokens, the default cuts 21% (BENCHMARKS.md).
        return list(range(32, self.config.max_seq_length, 32))

    def window_call(self, model, backbone):
        """`features -> span logits` through `LeanBert`'s blocks, or None where they cannot run.

        A row per window (`packing.one_per_row`), as in training: shared rows
        would cost more attention than the padding they save (BENCHMARKS.md).
        """
        backbone = backbones.Backbone.wrap(backbone)
        if not backbone.lean_blocks:
            return None
        finder = PackedSpanFinder(backbone, model)
        return lambda features: finder(packing.one_per_row(features), training=False)

    def answer(self, model, question, context, tokenized=None, window_call=None):
        """Raw questions and contexts -> the best answer of each (graph ops).

        The windows run by length bucket through `window_call`
        (`self.window_call`), else through the model; `tokenized`: see `_split`.
        """
        q, offsets, windows = self._split(question, context, tokenized)
        features, offset = self._pack(q, windows)
        logits = pipeline.bucketed_call(model, features, self.serving_cuts(), window_call)
        logits = tf.cast(logits, tf.float32)
        best, start_sub, end_sub, shape = span_answers.window_spans(
            logits, offset, windows, self.config.max_answer_length
        )
        batch_size = tf.shape(question, out_type=tf.int64)[0]
        question_best, winner, null = span_answers.best_windows(
            best, logits, windows.sentence, batch_size
        )
        has_span = question_best > NEG_INF / 10
        winner = tf.where(has_span, winner, 0)
        word_of = windows.word.to_tensor(0, shape=shape)
        first_word = tf.gather_nd(word_of, tf.stack([winner, tf.gather(start_sub, winner)], 1))
        last_word = tf.gather_nd(word_of, tf.stack([winner, tf.gather(end_sub, winner)], 1))
        span_text, char_start, char_end = span_answers.cut(
            context, offsets, first_word, last_word, has_span
        )
        no_answer_score = tf.where(has_span, null - question_best, -NEG_INF)
        abstain = ~has_span
        if self.config.version_2_with_negative:
            abstain |= no_answer_score > self.config.null_score_threshold
        return {
            "answer_text": tf.where(abstain, "", span_text),
            "answer_start": tf.where(abstain, -1, tf.cast(char_start, tf.int32)),
            "answer_end": tf.where(abstain, -1, tf.cast(char_end, tf.int32)),
            "score": tf.where(has_span, question_best, 0.0),
            "no_answer_score": no_answer_score,
            "span_text": span_text,
        }

    def forward(self, model, features):
        tokenized = features if "question_ids" in features else None
        return self.answer(model, features["question"], features["context"], tokenized)

    def postprocess(self, outputs):
        return {k: outputs[k] for k in SERVING_OUTPUTS}

    def evaluate(self, outputs, examples):
        gold = {i: [t for t, _ in a] for i, a in zip(examples.ids, examples.answers)}
        answered = {i: _text(o["answer_text"]) for i, o in zip(examples.ids, outputs)}
        version = "2.0" if self.config.version_2_with_negative else "1.1"
        metrics = squad_metrics.score(answered, gold, version=version)
        if self.config.version_2_with_negative:
            spans = {i: _text(o["span_text"]) for i, o in zip(examples.ids, outputs)}
            no_answer = {i: float(o["no_answer_score"]) for i, o in zip(examples.ids, outputs)}
            searched = squad_metrics.score(spans, gold, no_answer)
            for key in ("best_f1", "best_f1_threshold", "best_exact_match"):
                metrics[key] = searched[key]
            metrics["null_score_threshold"] = self.config.null_score_threshold
        return metrics

    def calibrate(self, validation_metrics):
        if not self.config.version_2_with_negative or "best_f1_threshold" not in validation_metrics:
            return False
        self.config.null_score_threshold = float(validation_metrics["best_f1_threshold"])
        logging.info(
            f"Null-score threshold set to {self.config.null_score_threshold:.4f} "
            f"(best F1 on validation: {validation_metrics['best_f1']:.2f})."
        )
        return True

    def write_predictions(self, outputs, examples, path):
        """Writes `{id: answer}` to `<path>.json`, the official scripts' format."""
        answers = {i: _text(o["answer_text"]) for i, o in zip(examples.ids, outputs)}
        return squad_metrics.write_predictions(path + ".json", answers)

    def serving_inputs(self):
        return {
            "question": tf.TensorSpec([None], tf.string, name="question"),
            "context": tf.TensorSpec([None], tf.string, name="context"),
        }

    def serving_functions(self, model, backbone):
        window_call = self.window_call(model, backbone)

        def serve(question, context):
            count = tf.shape(question)[0]
            # Unequal sizes would otherwise fail as a broadcast deep in the graph.
            same = tf.debugging.assert_equal(
                count,
                tf.shape(context)[0],
                message="question_answering: one `context` per `question`; sizes (question, "
                "context) differ",
            )
            with tf.control_dependencies([same]):
                question = tf.identity(question)

            def empty():
                types = {"answer_text": tf.string, "answer_start": tf.int32, "answer_end": tf.int32}
                return {k: tf.zeros([0], types.get(k, tf.float32)) for k in SERVING_OUTPUTS}

            # An empty request gets empty answers, as from the other exports.
            return tf.cond(
                count > 0,
                lambda: self.postprocess(
                    self.answer(model, question, context, window_call=window_call)
                ),
                empty,
            )

        return {"serving_default": (serve, self.serving_inputs())}

    def warmup_requests(self):
        """One short context, one longer than a window, a batch of mixed lengths."""
        from tftransfer import serving_warmup

        requests = []
        for contexts in serving_warmup.typical_texts(2 * self.config.max_seq_length):
            questions = [
                serving_warmup.sample_text(6, offset=i) + "?" for i in range(len(contexts))
            ]
            requests.append(
                {"question": np.array(questions, object), "context": np.array(contexts, object)}
            )
        return requests


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
