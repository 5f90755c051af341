import gc
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_call, fresh_process, tiny

from tftransfer import (
    backbones,
    configs,
    evaluation,
    experiment,
    export,
    loaded_run,
    predict,
    serving_warmup,
)
from tftransfer.data import packing, tagged_readers, word_casing, word_windows
from tftransfer.data.readers import DataError
from tftransfer.models.packed_token_classifier import PackedTokenClassifier
from tftransfer.tasks.token_classification import (
    IGNORE,
    TokenClassification,
    TokenClassificationConfig,
)

LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def _params(preset, train, **task):
    return configs.load(
        [],
        {
            "backbone": {"spec": preset},
            "task": {
                "type": "token_classification",
                "token_classification": {"max_seq_length": 8, "dropout": 0.0, **task},
            },
            "data": {"train": {"path": train}, "validation": {"path": train}},
            "trainer": {
                "batch_size": 8,
                "epochs": 6,
                "learning_rate": 3e-3,
                "checkpoint_every": 100,
                "seed": 7,
            },
        },
    )


@pytest.fixture(scope="module")
def conll_train(tmp_path_factory):
    return tiny.write_conll(str(tmp_path_factory.mktemp("ner") / "train.conll"), n_repeat=6)


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, tiny_preset, conll_train):
    run = str(tmp_path_factory.mktemp("ner_run") / "run")
    params = _params(tiny_preset, conll_train)
    # Two replicas on two logical CPUs: windows are split across them.
    params.override({"runtime": {"distribution_strategy": "mirrored"}})
    metrics = experiment.train(params, run)
    return run, metrics


@pytest.fixture(scope="module")
def ner_export(ner_run, tmp_path_factory):
    """The trained run's export, shared by the serving and CLI tests."""
    return export.export_run(ner_run[0], str(tmp_path_factory.mktemp("ner_export") / "serving"))


@pytest.fixture(scope="module")
def tokenizer(tiny_preset):
    return backbones.load(tiny_preset)[1]


def _task(tokenizer, max_seq_length=16, **kwargs):
    cfg = TokenClassificationConfig(labels=LABELS, max_seq_length=max_seq_length, **kwargs)
    return TokenClassification(cfg, tokenizer)


def _encode(task, sentences):
    words = tf.ragged.constant([w for w, _ in sentences])
    tags = tf.ragged.constant([[LABELS.index(t) for t in g] for _, g in sentences], tf.int32)
    return {k: v.numpy() for k, v in task.encode({"words": words, "tags": tags}).items()}


def test_label_goes_on_the_first_subword(tokenizer):
    task = _task(tokenizer, casing_features=None)  # None: on, the tokenizer lowercases
    # "bobs" -> bob ##s; "\u200b" (a format char) has no subword and gets [UNK].
    sentence = (
        ["bobs", "visited", "\u200b", "acme", "films"],
        ["B-PER", "O", "O", "B-ORG", "I-ORG"],
    )
    out = _encode(task, [sentence])
    vocab = tokenizer.get_vocabulary()
    ids = [vocab[i] for i, m in zip(out["token_ids"][0], out["padding_mask"][0]) if m]
    assert ids == ["[CLS]", "bob", "##s", "visited", "[UNK]", "acme", "film", "##s", "[SEP]"]
    tag = {t: LABELS.index(t) for t in LABELS}
    assert out["labels"][0, :9].tolist() == [
        IGNORE,
        tag["B-PER"],
        IGNORE,
        tag["O"],
        tag["O"],
        tag["B-ORG"],
        tag["I-ORG"],
        IGNORE,
        IGNORE,
    ]
    assert (out["labels"][0, 9:] == IGNORE).all()  # padding
    # The uncased tiny tokenizer gets casing classes; every subword has its word's.
    lower, other = word_casing.LOWER, word_casing.OTHER
    assert out["casing_ids"][0, :9].tolist() == [0, lower, lower, lower, other] + [lower] * 3 + [0]


def test_casing_classes():
    words = ["EU", "rejects", "German", "iPhone", "1996", ".", "I", "U.S.", "Zürich", "ÉCOLE"]
    c = word_casing
    expected = [c.UPPER, c.LOWER, c.CAPITALISED, c.MIXED, c.NUMBER, c.OTHER]
    expected += [c.CAPITALISED, c.UPPER, c.CAPITALISED, c.UPPER]
    assert word_casing.classify(tf.constant(words)).numpy().tolist() == expected


def test_label_all_subwords_continues_the_entity(tokenizer):
    task = _task(tokenizer, label_all_subwords=True)
    out = _encode(task, [(["bobs", "and", "alice"], ["B-PER", "O", "B-PER"])])
    tag = {t: LABELS.index(t) for t in LABELS}
    assert out["labels"][0, :6].tolist() == [
        IGNORE,
        tag["B-PER"],
        tag["I-PER"],
        tag["O"],
        tag["B-PER"],
        IGNORE,
    ]


def test_long_sentence_becomes_windows_and_every_word_is_predicted_once(tokenizer, tiny_preset):
    task = _task(tokenizer, max_seq_length=6)  # windows of 4 subwords, stride 2
    words = ["alice", "visited", "bobs", "in", "paris", "and", "london", "with", "carol"]
    tags = ["B-PER", "O", "B-PER", "O", "B-LOC", "O", "B-LOC", "O", "B-PER"]
    out = _encode(task, [(words, tags), (["bob"], ["B-PER"])])
    # 10 subwords -> windows starting at 0, 2, 4, 6; the short sentence -> 1.
    assert out["token_ids"].shape == (5, 6)
    # Every window labels the first subwords it holds (training sees them in
    # context each time); continuation subwords are ignored.
    labelled = (out["labels"] != IGNORE).sum(axis=1).tolist()
    assert labelled == [3, 3, 4, 4, 1]  # bob ##s: one label for two subwords

    backbone, _ = backbones.load(tiny_preset)
    model = task.build_model(backbone)
    probabilities = task.forward(model, {"words": tf.ragged.constant([words, ["bob"], words[:2]])})
    assert probabilities.row_lengths().numpy().tolist() == [9, 1, 2]
    np.testing.assert_allclose(tf.reduce_sum(probabilities.flat_values, -1), 1.0, rtol=1e-5)


def test_windows_run_by_length_bucket_as_one_padded_batch_would(tokenizer, tiny_preset):
    task = _task(tokenizer, max_seq_length=64)  # windows of 62: buckets 16 and 32 below
    backbone, _ = backbones.load(tiny_preset)
    model = task.build_model(backbone)
    words = tf.ragged.constant(
        [["alice", "visited", "paris"], ["bob", "met", "carol"] * 30, ["acme"] * 20]
    )
    windows = task.tagging.split(words)
    padded = model(task.tagging.features(windows, words), training=False)
    expected = word_windows.merge(tf.nn.softmax(padded)[:, 1:], windows, words.row_splits)
    by_bucket = task.word_probabilities(model, words)
    np.testing.assert_allclose(by_bucket.flat_values, expected.flat_values, atol=1e-5)
    # Evaluation tokenizes once (`pretokenize`, then cached) and gives the same.
    pretokenized = task.pretokenize({"words": words})
    assert pretokenized["pieces"].shape.rank == 3
    np.testing.assert_allclose(
        task.forward(model, pretokenized).flat_values, expected.flat_values, atol=1e-5
    )


@pytest.mark.slow
def test_training_learns_and_writes_conll_predictions(ner_run, conll_train):
    run, metrics = ner_run
    assert metrics["f1"] >= 0.7, metrics
    assert set(metrics["per_type"]) == {"LOC", "ORG", "PER"}
    with open(os.path.join(run, "params.yaml")) as f:
        assert "B-LOC" in f.read()  # discovered tags are saved with the model
    gold = tagged_readers.read(conll_train)
    with open(metrics["predictions_file"], encoding="utf-8") as f:
        lines = [line.split() for line in f.read().split("\n")]
    rows = [r for r in lines if r]
    assert len(rows) == sum(len(t) for t in gold.tokens)
    assert [r[0] for r in rows] == [w for s in gold.tokens for w in s]
    assert [r[1] for r in rows] == [t for s in gold.tags for t in s]
    assert all(r[2] in LABELS for r in rows)


@pytest.mark.slow
def test_document_context_lets_the_previous_sentence_change_a_tag(tiny_preset, tmp_path):
    path = tmp_path / "docs.conll"
    path.write_text(
        "-DOCSTART- O\n\nalice B-PER\n\nbob B-PER\n\n-DOCSTART- O\n\nparis B-LOC\n\nbob B-PER\n"
    )
    examples = tagged_readers.read(str(path))
    backbone, tokenizer = backbones.load(tiny_preset)
    data = configs.DataConfig()
    probabilities = {}
    for document_context in (False, True):
        cfg = TokenClassificationConfig(
            labels=LABELS, max_seq_length=8, document_context=document_context
        )
        task = TokenClassification(cfg, tokenizer)
        model = task.build_model(backbone)
        # The initialiser's head is tiny and unseeded, which shrinks the
        # context's effect on the output towards float32 noise; a unit-scale
        # head, the same in both runs, keeps it far above that.
        head = model.get_layer("logits")
        kernel, bias = head.get_weights()
        rng = np.random.default_rng(0)
        head.set_weights([rng.normal(size=kernel.shape).astype("float32"), np.zeros_like(bias)])
        dataset = task.eval_dataset(examples, 4, data)
        outputs = evaluation.predict_outputs(task, model, dataset)
        assert len(outputs) == (2 if document_context else 4)  # rows: documents or sentences
        sentences = task.sentence_outputs(outputs, examples)
        assert [len(p) for p in sentences] == [1, 1, 1, 1]
        probabilities[document_context] = [p[0] for p in sentences]
    alone, in_context = probabilities[False], probabilities[True]
    # "bob" after "alice" and "bob" after "paris": the same sentence, seen
    # with different neighbours only under document context.
    np.testing.assert_allclose(alone[1], alone[3], atol=1e-6)
    # A random backbone mixes context in weakly (~3e-4 here with the seeded
    # tiny preset); float32 noise between identical rows is ~1e-7.
    assert np.abs(in_context[1] - in_context[3]).max() > 1e-5


@pytest.mark.slow
def test_document_context_trains_and_evaluates_per_sentence(tiny_preset, conll_train, tmp_path):
    params = _params(tiny_preset, conll_train, document_context=True)
    metrics = experiment.train(params, str(tmp_path / "run"))
    gold = tagged_readers.read(conll_train)
    assert metrics["sentences"] == len(gold) > 1 == len(set(gold.documents))
    assert metrics["f1"] >= 0.7, metrics
    with open(metrics["predictions_file"], encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()]
    assert [len(b.splitlines()) for b in blocks] == [len(t) for t in gold.tokens]


@pytest.mark.slow
def test_unknown_tag_at_evaluation_names_file_and_line(ner_run, tmp_path):
    run, _ = ner_run
    bad = tmp_path / "dev.conll"
    bad.write_text("alice B-PER\nvisited O\n\nbob B-PER\nmet O\nacme B-FOOD\n")
    with pytest.raises(DataError, match=r"dev.conll:6: unknown tag `B-FOOD` for token `acme`"):
        loaded_run.evaluate(run, path=str(bad))


def test_rejects_tabular_formats(tmp_path):
    spec = configs.InputConfig(path=str(tmp_path / "x.tsv"), format="tsv")
    with pytest.raises(DataError, match="reads CoNLL or JSONL"):
        TokenClassification.read(spec)


@pytest.mark.slow
def test_export_signatures_in_a_fresh_process(ner_run, ner_export):
    run, path = ner_run[0], ner_export
    meta = export.read_metadata(path)
    assert set(meta["signatures"]) == {"serving_default", "tag_tokens"}
    assert meta["labels"][0] == "O"
    texts = ["Alice  visited Paris.", "Zoë met  Bob in London — and  Berlin", "", "nothing"]
    tokens = [["bob", "met", "carol", "smith"], ["acme"]]
    served = fresh_process.tag(path, texts, tokens)
    assert served["modules"] == []

    expected = predict.with_checkpoint(run, [{"text": t} for t in texts])
    ents = served["entities"]
    requests = serving_warmup.read(path)
    assert [len(inputs["text"]) for _, inputs in requests] == [1, 1, 16]
    assert serving_warmup.replay(tf.saved_model.load(path), path) == 3
    assert sum(ents["num_entities"]) > 0  # the model found something to check
    for i, (text, record) in enumerate(zip(texts, expected)):
        n = ents["num_entities"][i]
        got = [
            {
                "text": ents["entity_text"][i][j],
                "type": ents["entity_type"][i][j],
                "start": ents["entity_start"][i][j],
                "end": ents["entity_end"][i][j],
            }
            for j in range(n)
        ]
        assert got == [
            {k: e[k] for k in ("text", "type", "start", "end")} for e in record["entities"]
        ]
        for entity in got:
            assert text[entity["start"] : entity["end"]] == entity["text"]
        np.testing.assert_allclose(
            ents["entity_score"][i][:n], [e["score"] for e in record["entities"]], atol=1e-5
        )

    expected = predict.with_checkpoint(run, [{"tokens": t} for t in tokens])
    for i, record in enumerate(expected):
        n = served["tags"]["num_tokens"][i]
        assert n == len(tokens[i])
        assert served["tags"]["tags"][i][:n] == record["tags"]
        assert served["tags"]["tags"][i][n:] == [""] * (len(served["tags"]["tags"][i]) - n)


@pytest.mark.slow
def test_cli_predict_prints_entities_as_jsonl(ner_run, ner_export, tmp_path):
    run, path = ner_run[0], ner_export
    texts = tmp_path / "texts.txt"
    texts.write_text('Alice visited Paris\n{"tokens": ["bob", "met", "alice"], "id": 3}\n')
    outputs = []
    for source in (f"--model_dir={run}", f"--saved_model={path}"):
        # In this process: test_cli.py runs `predict` in a fresh one.
        result = cli_call.run("predict", source, f"--input={texts}")
        assert result.returncode == 0, result.stderr
        outputs.append([json.loads(line) for line in result.stdout.splitlines()])
    by_checkpoint, by_export = outputs
    first, second = by_checkpoint
    assert first["text"] == "Alice visited Paris"
    for entity in first["entities"]:
        assert set(entity) == {"text", "type", "start", "end", "score"}
        assert first["text"][entity["start"] : entity["end"]] == entity["text"]
    assert second["id"] == 3 and len(second["tags"]) == len(second["scores"]) == 3
    assert [e["text"] for e in by_export[0]["entities"]] == [e["text"] for e in first["entities"]]
    assert by_export[1]["tags"] == second["tags"]


@pytest.mark.slow
def test_resume_after_crash_matches_uninterrupted_run(
    tiny_preset, conll_train, tmp_path, train_with_crash
):
    # Training rows are windows, so the resumed data stream must skip windows.
    params = _params(tiny_preset, conll_train)
    params.override({"trainer": {"epochs": 2, "checkpoint_every": 5, "eval_every": 5}})
    whole = str(tmp_path / "whole")
    experiment.train(params, whole)
    crashed = str(tmp_path / "crashed")
    train_with_crash(params, crashed)

    def weights(run):
        return loaded_run.LoadedRun(run, "latest").model.get_weights()

    for a, b in zip(weights(whole), weights(crashed)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_reads_jsonl_with_configured_keys_and_bioes(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [
        {"words": ["carol", "smith", "visited", "paris"], "ner": ["B-PER", "E-PER", "O", "S-LOC"]},
        {"words": ["acme"], "ner": ["S-ORG"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = configs.InputConfig(path=str(path), tokens_column="words", tags_column="ner")
    examples = TokenClassification.read(spec)
    assert examples.tokens == [r["words"] for r in rows]
    assert examples.tags == [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
    assert examples.where(1, 0) == f"{path}:2"


@pytest.mark.slow
def test_a_model_that_does_not_match_its_checkpoint_is_an_error(ner_run, tmp_path):
    import shutil

    run, _ = ner_run
    edited = str(tmp_path / "edited")
    shutil.copytree(run, edited)
    params = configs.from_model_dir(edited)
    assert params.task.token_classification.casing_features is False
    params.task.token_classification.casing_features = True
    configs.save(params, os.path.join(edited, "params.yaml"))
    warnings = []
    handler = logging.Handler()
    handler.emit = warnings.append
    tf.get_logger().addHandler(handler)
    try:
        with pytest.raises(ValueError, match="does not fit the model built from"):
            loaded_run.LoadedRun(edited)
        gc.collect()  # where TF would warn about the failed restore's unrestored values
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [r for r in warnings if "unrestored" in r.getMessage()]  # the error says it all


@pytest.mark.slow
def test_predict_names_an_empty_token(ner_run):
    run, _ = ner_run
    rows = [{"tokens": ["bob"]}, {"tokens": ["bob", " "]}]
    with pytest.raises(
        DataError, match="input 2: field `tokens` holds an empty token at position 1"
    ):
        predict.with_checkpoint(run, rows)


def test_serving_packs_a_request_and_tags_as_the_plain_model(tokenizer, tiny_preset, monkeypatch):
    task = _task(tokenizer, max_seq_length=64)
    backbone, _ = backbones.load(tiny_preset)
    model = task.build_model(backbone)
    words = tf.ragged.constant(
        [["alice", "visited", "paris"], ["bob", "met", "carol"] * 30, ["acme"] * 20, ["x"]]
    )
    expected = task.word_probabilities(model, words)  # by length bucket
    packed_rows = []
    pack = packing.pack

    def recording_pack(features, multiple=1):
        packed_rows.append(pack(features, multiple)["token_ids"].shape[0])
        return pack(features, multiple)

    monkeypatch.setattr(packing, "pack", recording_pack)
    call = task.packed_call(model, backbone)
    served = task.word_probabilities(model, words, window_call=call)
    np.testing.assert_allclose(served.flat_values, expected.flat_values, atol=1e-5)
    windows = int(task.tagging.split(words).sentence.shape[0])
    assert packed_rows and packed_rows[0] < windows  # short windows shared rows
    one = task.word_probabilities(model, words[:1], window_call=call)  # skips packing
    np.testing.assert_allclose(one.flat_values, expected[:1].flat_values, atol=1e-5)
    casing = _task(tokenizer, max_seq_length=64, casing_features=True)
    assert casing.packed_call(casing.build_model(backbone), backbone) is None


@pytest.mark.slow
def test_packed_training_trains_the_same_tagger(tiny_preset, conll_train, tmp_path):
    # Fixed-length batches hold the same windows per step as packed ones and
    # nothing is dropped out, so both runs must end in the same weights: the
    # packed tagger's unpacked logits meet the labels where the plain ones do.
    # The packed run also evaluates packed, and must score the same.
    weights, metrics = {}, {}
    for packing_on in (False, True):
        params = _params(tiny_preset, conll_train, max_seq_length=16)
        params.override(
            {"data": {"bucket_boundaries": [], "packing": packing_on}, "trainer": {"epochs": 1}}
        )
        run = str(tmp_path / f"packing_{packing_on}")
        metrics[packing_on] = experiment.train(params, run)
        weights[packing_on] = loaded_run.LoadedRun(run, "latest").model.get_weights()
    for plain_weight, packed_weight in zip(weights[False], weights[True]):
        np.testing.assert_allclose(packed_weight, plain_weight, atol=1e-5)
    for name in ("f1", "precision", "recall"):
        assert metrics[True][name] == pytest.approx(metrics[False][name]), name


@pytest.mark.parametrize("casing,packs", [(False, True), (True, False)])
def test_unset_packing_packs_a_tagger_unless_it_has_casing_inputs(
    tiny_preset, conll_train, casing, packs
):
    params = _params(tiny_preset, conll_train, casing_features=casing)
    run = experiment.build(params)
    assert isinstance(run.train_model, PackedTokenClassifier) == packs
    assert run.packing is packs
