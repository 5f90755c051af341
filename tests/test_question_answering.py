import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import fresh_process, gradients, tiny

from tftransfer import backbones, configs, experiment, export, predict, serving_warmup
from tftransfer.tasks.question_answering import QuestionAnswering, QuestionAnsweringConfig


@pytest.fixture(scope="module")
def tokenizer(tiny_preset):
    return backbones.load(tiny_preset)[1]


def _task(tokenizer, **kwargs):
    cfg = dict(max_seq_length=12, max_query_length=4, doc_stride=3, max_answer_length=5)
    cfg.update(kwargs)
    return QuestionAnswering(QuestionAnsweringConfig(**cfg), tokenizer)


def _encode(task, question, context, answer):
    start = context.index(answer) if answer else -1
    batch = {
        "question": tf.constant([question]),
        "context": tf.constant([context]),
        "answer_start": tf.constant([start], tf.int64),
        "answer_end": tf.constant([start + len(answer) if answer else -1], tf.int64),
    }
    out = {k: v.numpy() for k, v in task.encode(batch).items()}
    vocab = tokenizer_vocab(task)
    spans = []
    for ids, (s, e) in zip(out["token_ids"], out["labels"]):
        spans.append(" ".join(vocab[i] for i in ids[s : e + 1]) if s else None)
    return out, spans


def tokenizer_vocab(task):
    return task.tokenizer.get_vocabulary()


def test_windows_question_first_and_labels(tokenizer):
    task = _task(tokenizer)  # question "who is there ?" = 4 subwords: 5 context subwords left
    context = "the movie was great and bob met carol in paris"
    out, spans = _encode(task, "who is there ?", context, "bob met carol")
    vocab = tokenizer_vocab(task)
    first = [vocab[i] for i in out["token_ids"][0][: out["padding_mask"][0].sum()]]
    assert first == ["[CLS]", "who", "is", "there", "?", "[SEP]"] + context.split()[:5] + ["[SEP]"]
    assert out["segment_ids"][0].tolist() == [0] * 6 + [1] * 6
    # 10 context subwords, windows of 5 every 3: starts 0, 3, 6.
    assert len(spans) == 3
    # The answer (subwords 5-7) is whole only in the window starting at 3.
    assert spans == [None, "bob met carol", None]


def test_answer_at_window_edges_and_short_context(tokenizer):
    task = _task(tokenizer)
    # Answer is the last subword of the first window and the first of the second.
    _, spans = _encode(task, "who is there ?", "the movie was great bob and we love", "bob")
    assert spans == ["bob", "bob"]
    # A context shorter than one window is one window.
    _, spans = _encode(task, "who ?", "alice met bob", "alice")
    assert spans == ["alice"]
    # Unanswerable: [CLS] (label 0) everywhere.
    out, spans = _encode(task, "who ?", "the movie was great and we love it so", "")
    assert spans == [None] * len(spans) and (out["labels"] == 0).all()


def test_answer_covers_whole_words_with_unicode_and_spaces(tokenizer):
    task = _task(tokenizer, max_seq_length=24)
    context = "Zoë  visited   Zürich, then bobs"
    # The gold answer starts inside a word: the label covers whole words.
    out, spans = _encode(task, "who ?", context, "ürich")
    assert spans == ["zurich"]  # accents stripped, whole word labelled


class _Pointer:
    """A real Keras model whose span logits are fixed per token id."""

    def __init__(self, tokenizer, start_tokens, end_tokens, null=-5.0):
        vocab = tokenizer.get_vocabulary()
        table = np.zeros((len(vocab), 2), np.float32)
        for token, score in start_tokens.items():
            table[vocab.index(token), 0] = score
        for token, score in end_tokens.items():
            table[vocab.index(token), 1] = score
        table[vocab.index("[CLS]")] = null / 2
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        extra = [
            keras.Input(shape=(None,), dtype="int32", name=n)
            for n in ("segment_ids", "padding_mask")
        ]
        logits = keras.layers.Embedding(len(vocab), 2, weights=[table], trainable=False)(ids)
        self.model = keras.Model(
            {"token_ids": ids, "segment_ids": extra[0], "padding_mask": extra[1]}, logits
        )


def _answer(task, pointer, questions, contexts):
    out = task.answer(pointer.model, tf.constant(questions), tf.constant(contexts))
    return {k: v.numpy().tolist() for k, v in out.items()}


def test_best_span_across_windows_and_max_answer_length(tokenizer):
    context = "the movie was great and bob met carol in paris"
    pointer = _Pointer(tokenizer, {"bob": 3.0, "great": 1.0}, {"carol": 3.0, "paris": 4.0})
    out = _answer(_task(tokenizer), pointer, ["who ?"], [context])
    # bob..paris scores 7 but is 5 subwords long; max_answer_length=5 allows it.
    assert out["answer_text"] == [b"bob met carol in paris"]
    start, end = out["answer_start"][0], out["answer_end"][0]
    assert context[start:end] == "bob met carol in paris"
    out = _answer(_task(tokenizer, max_answer_length=3), pointer, ["who ?"], [context])
    assert out["answer_text"] == [b"bob met carol"]
    assert out["score"][0] == pytest.approx(6.0)


def test_windows_run_by_length_bucket_as_one_padded_batch_would(tokenizer, tiny_preset):
    task = _task(tokenizer, max_seq_length=64, max_query_length=8, doc_stride=16)
    model = task.build_model(backbones.load(tiny_preset)[0])
    questions = tf.constant(["who ?", "where did bob go ?", "what ?"])
    long = " ".join(["the movie was great and bob met carol in paris"] * 12)
    contexts = tf.constant(["bob met carol", long, "carol went to paris with bob"])
    by_bucket = task.answer(model, questions, contexts)
    one_bucket = QuestionAnswering(task.config, tokenizer)
    one_bucket.serving_cuts = lambda: []  # every window padded to the longest
    padded = one_bucket.answer(model, questions, contexts)
    for key in ("answer_start", "answer_end"):
        np.testing.assert_array_equal(by_bucket[key], padded[key])
    np.testing.assert_allclose(by_bucket["score"], padded["score"], atol=1e-4)
    # Evaluation tokenizes once (`pretokenize`, then cached) and gives the same.
    tokenized = task.pretokenize({"question": questions, "context": contexts})
    again = task.forward(model, tokenized)
    np.testing.assert_array_equal(again["answer_start"], padded["answer_start"])
    np.testing.assert_allclose(again["score"], padded["score"], atol=1e-4)


def test_fused_blocks_answer_as_the_model_does(tokenizer, tiny_preset):
    task = _task(tokenizer, max_seq_length=64, max_query_length=8, doc_stride=16)
    backbone = backbones.load(tiny_preset)[0]
    keras.utils.set_random_seed(3)
    model = task.build_model(backbone)
    questions = tf.constant(["who ?", "where did bob go ?", "what ?", "and carol ?"])
    long = " ".join(["the movie was great and bob met carol in paris"] * 12)
    contexts = tf.constant(["bob met carol", long, "carol went to paris with bob", "no"])
    window_call = task.window_call(model, backbone)
    fused = task.answer(model, questions, contexts, window_call=window_call)
    by_model = task.answer(model, questions, contexts)
    for key in ("answer_text", "answer_start", "answer_end"):
        np.testing.assert_array_equal(fused[key], by_model[key])
    for key in ("score", "no_answer_score"):
        np.testing.assert_allclose(fused[key], by_model[key], atol=1e-4)
    # `backbone.fast_forward: off` keeps keras-hub's blocks: the model as it is.
    backbone._tftransfer_fast_forward = False
    assert task.window_call(model, backbone) is None


def _training_batch(task, questions=6):
    """Encoded training windows and span labels of `tiny.name_questions`."""
    paragraphs = tiny.name_questions(n=questions)["data"][0]["paragraphs"]
    answers = [p["qas"][0]["answers"][0] for p in paragraphs]
    starts = [a["answer_start"] for a in answers]
    features = task.encode(
        {
            "question": tf.constant([p["qas"][0]["question"] for p in paragraphs]),
            "context": tf.constant([p["context"] for p in paragraphs]),
            "answer_start": tf.constant(starts, tf.int64),
            "answer_end": tf.constant(
                [s + len(a["text"]) for s, a in zip(starts, answers)], tf.int64
            ),
        }
    )
    return features, features.pop("labels")


def test_training_runs_the_fused_blocks_with_the_models_loss_and_gradients(tokenizer, tiny_preset):
    task = _task(tokenizer, max_seq_length=24, max_query_length=6, doc_stride=8, dropout=0.0)
    backbone = backbones.load(tiny_preset)[0]
    keras.utils.set_random_seed(3)
    model = task.build_model(backbone)
    one_device = tf.distribute.get_strategy()
    train_model = task.build_train_model(model, backbone, one_device)
    features, labels = _training_batch(task)
    lengths = features["padding_mask"].numpy().sum(axis=1)
    assert len(set(lengths)) > 1 and lengths.max() == 24  # padded windows of several lengths
    assert {0} < set(labels[:, 0].numpy())  # windows with the answer and without ([CLS])
    variables = model.trainable_variables
    loss, plain = gradients.loss_and_gradients(task, model, features, labels, variables)
    fused_loss, fused = gradients.loss_and_gradients(task, train_model, features, labels, variables)
    assert fused_loss == pytest.approx(loss, abs=1e-5)
    gradients.assert_same(plain, fused, variables)  # the pooler's None on both sides
    # As packing: one replica, not TPUs; `backbone.fast_forward: off` keeps keras-hub's blocks.
    two_replicas = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert task.build_train_model(model, backbone, two_replicas) is None
    backbone._tftransfer_fast_forward = False
    assert task.build_train_model(model, backbone, one_device) is None


def test_null_answers_for_v2(tokenizer):
    context = "the movie was great and bob met carol"
    pointer = _Pointer(tokenizer, {"bob": 1.0}, {"bob": 1.0}, null=5.0)
    v1 = _answer(_task(tokenizer), pointer, ["who ?", "who ?"], [context, ""])
    assert v1["answer_text"] == [b"bob", b""]  # v1.1 always answers (but not from nothing)
    assert v1["no_answer_score"][0] == pytest.approx(3.0)
    v2 = _task(tokenizer, version_2_with_negative=True)
    assert _answer(v2, pointer, ["who ?"], [context])["answer_text"] == [b""]
    v2 = _task(tokenizer, version_2_with_negative=True, null_score_threshold=3.5)
    out = _answer(v2, pointer, ["who ?"], [context])
    assert out["answer_text"] == [b"bob"] and out["answer_start"] == [context.index("bob")]


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_preset):
    root = tmp_path_factory.mktemp("qa")
    path = str(root / "train.json")
    with open(path, "w") as f:
        json.dump(tiny.name_questions(), f)
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {
                "type": "question_answering",
                "question_answering": {
                    "max_seq_length": 24,
                    "max_query_length": 6,
                    "doc_stride": 8,
                    "dropout": 0.0,
                },
            },
            "data": {"train": {"path": path}, "validation": {"path": path}},
            "trainer": {"batch_size": 8, "epochs": 6, "learning_rate": 3e-3, "seed": 7},
        },
    )
    run = str(root / "run")
    return run, experiment.train(params, run)


@pytest.mark.slow
def test_training_learns_and_writes_official_predictions(qa_run):
    run, metrics = qa_run
    assert metrics["exact_match"] >= 60.0, metrics
    with open(metrics["predictions_file"]) as f:
        predictions = json.load(f)
    assert len(predictions) == metrics["questions"] == 40


@pytest.mark.slow
def test_export_in_a_fresh_process(qa_run, tmp_path):
    run, _ = qa_run
    path = export.export_run(run, str(tmp_path / "serving"))
    rows = [
        {"question": "who is there ?", "context": "we love  this film and carol was great"},
        {"question": "who ?", "context": " ".join(["the movie was great"] * 8) + " bob"},
    ]
    served = fresh_process.serve(path, ["question", "context"], rows)
    assert served["modules"] == []
    expected = predict.with_checkpoint(run, rows)
    out = served["outputs"]
    for i, (row, record) in enumerate(zip(rows, expected)):
        assert out["answer_text"][i] == record["answer_text"]
        assert (
            row["context"][out["answer_start"][i] : out["answer_end"][i]] == record["answer_text"]
        )
    np.testing.assert_allclose(out["score"], [r["score"] for r in expected], atol=1e-4)
    # The warmup requests call the signature as TF Serving would at load.
    requests = serving_warmup.read(path)
    assert [len(inputs["context"]) for _, inputs in requests] == [1, 1, 16]
    assert serving_warmup.replay(tf.saved_model.load(path), path) == 3

    serve = tf.saved_model.load(path).signatures["serving_default"]
    nothing = serve(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    assert {k: v.shape[0] for k, v in nothing.items()} == dict.fromkeys(nothing, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"one `context` per `question`"):
        serve(question=tf.constant(["who ?", "what ?"]), context=tf.constant(["bob"]))


def test_answer_offsets_with_unicode_and_extra_whitespace(tokenizer):
    context = "Zoë  met   Bob\tin  Zürich ,  東京"
    pointer = _Pointer(tokenizer, {"bob": 2.0}, {"zurich": 2.0})
    out = _answer(_task(tokenizer, max_seq_length=24), pointer, ["who ?"], [context])
    start, end = out["answer_start"][0], out["answer_end"][0]
    assert context[start:end] == out["answer_text"][0].decode("utf-8") == "Bob\tin  Zürich"


@pytest.mark.slow
def test_predictions_file_agrees_with_the_official_script(qa_run, tmp_path):
    from official.nlp.tools import squad_evaluate_v1_1

    run, metrics = qa_run
    with open(metrics["predictions_file"]) as f:
        predictions = json.load(f)
    official = squad_evaluate_v1_1.evaluate(tiny.name_questions()["data"], predictions)
    assert metrics["exact_match"] == pytest.approx(100 * official["exact_match"])
    assert metrics["f1"] == pytest.approx(100 * official["final_f1"])
