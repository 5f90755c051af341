import json
import os

import numpy as np
import pytest
from helpers import fresh_process, in_process, tiny

from tftransfer import configs, experiment, export, loaded_run, predict, serving_warmup

TEXTS = ["great movie", "i hate this film", "Café naïve Zürich!", "  spaces   everywhere "]


def _train(params, model_dir):
    params.override({"trainer": {"epochs": 1}})
    experiment.train(params, model_dir)
    return model_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_preset, sentiment_tsv):
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"text_classification": {"max_seq_length": 32, "pooling": "mean"}},
            "data": {
                "train": {"path": sentiment_tsv, "text_column": "sentence"},
                "validation": {"path": sentiment_tsv, "text_column": "sentence"},
            },
            "trainer": {"batch_size": 8, "learning_rate": 3e-3},
        },
    )
    return _train(params, str(tmp_path_factory.mktemp("run") / "run"))


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The run's export with the defaults; the tests that only read it share it."""
    return export.export_run(run_dir, str(tmp_path_factory.mktemp("exported") / "serving"))


@pytest.mark.slow
def test_fresh_process_matches_predict(run_dir, exported):
    path = exported
    assert path.endswith(os.path.join("serving", "1"))  # version 1 of a new folder
    rows = [{"text": t} for t in TEXTS]
    served = fresh_process.serve(path, ["text"], rows)
    assert served["modules"] == []
    expected = predict.with_checkpoint(run_dir, rows)
    np.testing.assert_allclose(
        served["outputs"]["probabilities"], [r["probabilities"] for r in expected], atol=1e-5
    )
    assert served["outputs"]["labels"] == [r["labels"] for r in expected]
    assert served["outputs"]["label_ids"] == [r["label_ids"] for r in expected]


@pytest.mark.slow
def test_layout_versions_and_metadata(run_dir, tmp_path):
    base = str(tmp_path / "serving")
    first = export.export_run(run_dir, base)
    second = export.export_run(run_dir, base)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary folders left
    with pytest.raises(FileExistsError):
        export.export_run(run_dir, base, version=2)
    meta = export.read_metadata(first)
    assert meta["inputs"] == {"text": {"dtype": "string", "shape": [None]}}
    assert meta["outputs"]["labels"] == {"dtype": "string", "shape": [None]}
    assert meta["outputs"]["probabilities"]["shape"] == [None, 2]
    assert "FastWordpieceTokenizeWithOffsets" in meta["custom_ops"]
    assert meta["min_tf_serving_version"] == "2.20"
    assert meta["labels"] == ["negative", "positive"]


# What TF Serving does at load: parse each record as a PredictionLog and call
# the request's signature with its tensors; here in a process without tftransfer.
WARMUP_REPLAY = r"""
import json, os, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
from tensorflow_serving.apis import prediction_log_pb2
path = sys.argv[1]
loaded = tf.saved_model.load(path)
records = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
replies = []
for raw in tf.data.TFRecordDataset(records).as_numpy_iterator():
    request = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    out = loaded.signatures[request.model_spec.signature_name](**inputs)
    replies.append({"signature": request.model_spec.signature_name,
                    "batch": [len(v) for v in inputs.values()],
                    "rows": {k: int(v.shape[0]) for k, v in out.items()}})
print(json.dumps(replies))
"""


@pytest.mark.slow
def test_export_carries_warmup_requests_that_replay(exported):
    path = exported
    replies = fresh_process.python(WARMUP_REPLAY, path)
    # One short text, one as long as the window, a batch of 16 mixed lengths.
    assert [r["batch"] for r in replies] == [[1], [1], [16]]
    assert all(r["signature"] == "serving_default" for r in replies)
    for reply in replies:
        assert set(reply["rows"]) == {"labels", "label_ids", "probabilities"}
        assert set(reply["rows"].values()) == set(reply["batch"])
    assert export.read_metadata(path)["warmup_requests"] == 3
    texts = [inputs["text"] for _, inputs in serving_warmup.read(path)]
    lengths = [len(t.split()) for t in texts[2]]
    assert min(lengths) < 8 and max(lengths) == 32  # the task's max_seq_length


@pytest.mark.slow
def test_warmup_requests_can_be_turned_off(run_dir, tmp_path):
    loaded = loaded_run.LoadedRun(run_dir)
    path = export.save(loaded.task, loaded.model, loaded.backbone, str(tmp_path), warmup=False)
    assert serving_warmup.read(path) == []
    assert "warmup_requests" not in export.read_metadata(path)


@pytest.mark.slow
def test_bfloat16_export_answers_in_float32_like_the_float32_one(run_dir, exported, tmp_path):
    import tensorflow as tf

    base = str(tmp_path / "serving")
    fp32 = exported
    bf16 = export.export_run(run_dir, base, mixed_precision="bfloat16")
    assert export.read_metadata(bf16)["compute_dtype"] == "bfloat16"
    assert export.read_metadata(fp32)["compute_dtype"] == "float32"
    assert export.read_metadata(bf16)["outputs"]["probabilities"]["dtype"] == "float32"
    texts = tf.constant(TEXTS)
    served = [
        tf.saved_model.load(p).signatures["serving_default"](text=texts) for p in (fp32, bf16)
    ]
    # bfloat16 keeps 8 bits of mantissa: probabilities agree to about 1e-2.
    np.testing.assert_allclose(served[1]["probabilities"], served[0]["probabilities"], atol=2e-2)
    # The word table is stored as the graph reads it (not cast on every request).
    stored = tf.saved_model.load(bf16).weights
    tables = [v for v in stored if v.shape.as_list() == [len(tiny.VOCAB), 16]]
    assert [v.dtype for v in tables] == [tf.bfloat16]
    assert served[1]["probabilities"].dtype == tf.float32
    with pytest.raises(configs.ConfigError, match="mixed_precision"):
        export.export_run(run_dir, base, mixed_precision="int8")


@pytest.mark.slow
def test_weights_are_written_once(run_dir, exported):
    path = exported
    loaded = loaded_run.LoadedRun(run_dir)
    weight_bytes = sum(w.size * w.dtype.itemsize for w in loaded.model.get_weights())
    data = sum(
        os.path.getsize(os.path.join(path, "variables", f))
        for f in os.listdir(os.path.join(path, "variables"))
    )
    assert weight_bytes <= data < 1.5 * weight_bytes


@pytest.mark.slow
def test_failed_export_leaves_nothing(run_dir, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "graph_ops", boom)
    with pytest.raises(RuntimeError):
        export.export_run(run_dir, str(tmp_path / "serving"))
    assert os.listdir(tmp_path / "serving") == []


def test_a_killed_exports_leftover_is_removed_by_the_next(tmp_path):
    from tftransfer import fileio

    killed = tmp_path / f".tmp-3-{fresh_process.dead_pid()}"  # as a kill -9 mid-export leaves it
    running = tmp_path / f".tmp-4-{os.getpid()}"  # another export, still writing
    for folder in (killed, running):
        (folder / "variables").mkdir(parents=True)
    with fileio.atomic_folder(str(tmp_path / "5")) as tmp:
        open(os.path.join(tmp, "saved_model.pb"), "w").close()
    assert sorted(os.listdir(tmp_path)) == sorted(["5", running.name])


@pytest.mark.slow
def test_sentence_pair_export(tmp_path, tiny_preset):
    data = tmp_path / "pairs.jsonl"
    rows = [
        {"a": "great movie", "b": "good film", "y": "same"},
        {"a": "awful plot", "b": "great story", "y": "different"},
    ] * 8
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"text_classification": {"max_seq_length": 32}},
            "data": {
                "train": {
                    "path": str(data),
                    "text_column": "a",
                    "text_pair_column": "b",
                    "label_column": "y",
                }
            },
            "trainer": {"batch_size": 4},
        },
    )
    run = _train(params, str(tmp_path / "run"))
    path = export.export_run(run, str(tmp_path / "serving"))
    assert set(export.read_metadata(path)["inputs"]) == {"text", "text_pair"}
    query = [{"text": "great movie", "text_pair": "awful plot"}]
    # In this process: test_fresh_process_matches_predict loads one in a fresh one.
    served = in_process.call(
        in_process.load(path), text=[query[0]["text"]], text_pair=[query[0]["text_pair"]]
    )
    expected = predict.with_checkpoint(run, query, checkpoint="latest")
    np.testing.assert_allclose(served["probabilities"], [expected[0]["probabilities"]], atol=1e-5)
    via_saved_model = predict.with_saved_model(path, query)
    assert via_saved_model[0]["labels"] == expected[0]["labels"]


@pytest.mark.slow
def test_evaluate_another_file_and_bad_predict_input(run_dir, sentiment_tsv):
    metrics = loaded_run.evaluate(run_dir, path=sentiment_tsv)
    assert metrics["examples"] == 56
    assert os.path.exists(os.path.join(run_dir, "eval_train.json"))
    with pytest.raises(ValueError, match="input 2: needs the field"):
        predict.with_checkpoint(run_dir, [{"text": "fine"}, {"txt": "oops"}])
    from tftransfer.cli import records

    path = os.path.join(run_dir, "inputs.jsonl")
    with open(path, "w") as f:
        f.write('{"text": "fine"}\n\n{"text": " "}\n')
    with pytest.raises(ValueError, match=r"inputs.jsonl:3: field `text` is empty"):
        list(records.read_records(path))


@pytest.mark.slow
def test_predict_streams_one_batch_at_a_time(run_dir):
    read = []

    def records():
        for i in range(10):
            read.append(i)
            yield {"text": f"text number {i}"} if i != 9 else {"txt": "oops"}

    results = predict.with_checkpoint(run_dir, records(), batch_size=4, stream=True)
    first = next(results)
    assert first["text"] == "text number 0" and len(read) == 4  # before the rest is read
    assert [next(results)["text"] for _ in range(7)][-1] == "text number 7"
    with pytest.raises(ValueError, match="input 10: needs the field"):
        next(results)


@pytest.mark.slow
def test_an_empty_text_gets_probabilities_from_the_export(exported):
    import tensorflow as tf

    path = exported
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(text=tf.constant(["", "fine"]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_evaluating_again_and_again_keeps_no_model_alive(run_dir):
    import gc

    import keras

    def live_models():
        gc.collect()
        return sum(isinstance(o, keras.Model) for o in gc.get_objects())

    loaded_run.evaluate(run_dir)
    before = live_models()
    for _ in range(2):  # as `compare` does, once per cell
        loaded_run.evaluate(run_dir)
    assert live_models() == before
