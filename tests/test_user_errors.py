"""User mistakes outside single config values: files, overrides, environment, Ctrl-C.

Each ends in one line on stderr with status 2 (130 for Ctrl-C), no
traceback, and nothing written; `test_config_properties.py` covers every
config field and flag value.
"""

import os

import pytest
import tensorflow as tf
from helpers import cli_call

from tftransfer import configs, experiment
from tftransfer.backbones import gguf_converter
from tftransfer.training import distribute


def _refused(result, *fragments):
    assert result.returncode == 2, result
    assert len(result.error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_config_file_that_is_not_utf8_names_its_line(tmp_path):
    latin1 = tmp_path / "exp.yaml"
    latin1.write_bytes("trainer:\n  epochs: 1  # r\u00e9sum\u00e9\n".encode("latin-1"))
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    run = tmp_path / "run"
    for path, line in ((latin1, 2), (binary, 2)):  # (the bytes hold a newline)
        result = cli_call.run("train", f"--model_dir={run}", f"--config_file={path}")
        _refused(result, f"{path}:{line}: not UTF-8 text")
    assert not run.exists()


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("{trainer: [}", "--params_override: cannot read"),
        ("trainer.epochs=1,foo", "Malformed hyperparameter value"),
        ("trainer=null", "`trainer` cannot be null"),
        ("trainer.epochs=--5", "`trainer.epochs` must be a whole number"),
        ("{trainer: {learning_rate: .inf}}", "`trainer.learning_rate` must be a finite number"),
    ],
)
def test_a_malformed_override_is_one_line(tmp_path, override, fragment):
    result = cli_call.run(
        "train", f"--model_dir={tmp_path / 'run'}", f"--params_override={override}"
    )
    _refused(result, fragment)
    assert not (tmp_path / "run").exists()


def test_repeated_overrides_apply_in_order():
    params = configs.load([], ["trainer.epochs=2,trainer.batch_size=4", "trainer.epochs=5"])
    assert (params.trainer.epochs, params.trainer.batch_size) == (5, 4)


def test_every_repeated_override_flag_is_read(tmp_path):
    result = cli_call.run(
        "train",
        f"--model_dir={tmp_path / 'run'}",
        "--params_override=trainer.epochs=2",
        "--params_override=trainer.batch_size=0",
    )
    _refused(result, "trainer.batch_size must be >= 1")


def test_a_missing_data_file_names_the_key_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    result = cli_call.run(
        "train", f"--model_dir={run}", f"--params_override=data.train.path={tmp_path}/nope.tsv"
    )
    _refused(result, "data.train.path:", "nope.tsv: no such file")
    assert not run.exists()


@pytest.mark.parametrize(
    "tf_config,fragment",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ("[1, 2]", "TF_CONFIG must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs "cluster"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', '"task"'),
    ],
)
def test_a_bad_tf_config_is_one_line(tmp_path, monkeypatch, tf_config, fragment):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(distribute.DistributeError, match=fragment.replace("[", r"\[")):
        distribute.check_tf_config("multi_worker_mirrored")
    result = cli_call.run(
        "train",
        f"--model_dir={tmp_path / 'run'}",
        "--config_file=configs/demo_goemotions_sentiment.yaml",
        "--distribution_strategy=multi_worker_mirrored",
    )
    _refused(result, "TF_CONFIG")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="has GPUs")
def test_more_gpus_than_the_machine_has_is_one_line(tmp_path):
    result = cli_call.run(
        "train",
        f"--model_dir={tmp_path / 'run'}",
        "--config_file=configs/demo_goemotions_sentiment.yaml",
        "--num_gpus=2",
    )
    _refused(result, "runtime.num_gpus=2, but TensorFlow sees 0 GPU(s)")


def test_ctrl_c_is_one_line_that_says_how_to_resume(tmp_path, monkeypatch):
    def interrupted(params, model_dir):
        raise KeyboardInterrupt  # what Python raises on SIGINT mid-training

    monkeypatch.setattr(experiment, "train", interrupted)
    result = cli_call.run(
        "train",
        f"--model_dir={tmp_path / 'run'}",
        "--config_file=configs/demo_goemotions_sentiment.yaml",
    )
    assert result.returncode == 130 and len(result.error_lines) == 1, result
    assert "interrupted (run the same command to resume" in result.stderr


def test_packing_with_windows_is_refused_before_a_model_dir_exists(tmp_path, tiny_params):
    run = tmp_path / "run"
    tiny_params.override(
        {"data": {"packing": True}, "task": {"text_classification": {"long_texts": "windows"}}}
    )
    with pytest.raises(configs.ConfigError, match="data.packing: .* cannot train on packed rows"):
        experiment.train(tiny_params, str(run))
    assert not run.exists()


@pytest.mark.parametrize("kind", ["random", "empty", "text", "half", "first_kb"])
def test_a_file_that_is_not_a_whole_gguf_is_named(tmp_path, llama_dir, kind):
    whole = open(llama_dir + ".gguf", "rb").read()
    content = {
        "random": os.urandom(50_000),
        "empty": b"",
        "text": b"not a checkpoint\n" * 100,
        "half": whole[: len(whole) // 2],
        "first_kb": whole[:1024],
    }[kind]
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(gguf_converter.ConversionError, match=f"{path}: not a readable GGUF"):
        gguf_converter.convert(str(path), str(tmp_path / "out"))
    assert os.listdir(tmp_path) == ["model.gguf"]  # no folder, no temporary left


def test_the_converter_does_not_write_into_a_folder_that_holds_files(tmp_path, llama_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    gguf = llama_dir + ".gguf"
    with pytest.raises(gguf_converter.ConversionError, match=f"{out} already exists"):
        gguf_converter.convert(gguf, str(out))
    assert os.listdir(out) == ["notes.txt"]


def test_a_byte_order_mark_is_not_part_of_the_first_text(tmp_path):
    from tftransfer.cli import records

    path = tmp_path / "texts.txt"
    path.write_bytes("\ufefffirst line\nsecond\n".encode("utf-8"))
    assert [r["text"] for r in records.read_records(str(path))] == ["first line", "second"]
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_bytes('\ufeff{"text": "a"}\n'.encode("utf-8"))
    assert list(records.read_records(str(jsonl))) == [{"text": "a"}]


def test_a_text_pair_for_a_single_text_model_is_refused():
    from tftransfer import predict
    from tftransfer.data.readers import DataError

    single = {"serving_default": {"text": tf.TensorSpec([None], tf.string)}}
    records = [{"text": "a"}, {"text": "b", "text_pair": "c"}]
    with pytest.raises(DataError, match="input 2: has `text_pair`, but this model reads single"):
        predict._route(records, single)
    text = single["serving_default"]["text"]
    pairs = {"serving_default": {"text": text, "text_pair": text}}
    assert predict._route(records[1:], pairs) == {"serving_default": [0]}


def test_data_that_cannot_be_bundled_is_found_through_tftransfer_data(tmp_path, monkeypatch):
    from tftransfer.data import readers

    monkeypatch.delenv("TFTRANSFER_DATA", raising=False)
    result = cli_call.run(
        "train",
        f"--model_dir={tmp_path / 'run'}",
        "--config_file=configs/sst2_minilm.yaml",
        "--config_file=configs/local/sst2.yaml",
    )
    _refused(
        result, "data.train.path: ${TFTRANSFER_DATA}/sst2/train.tsv: $TFTRANSFER_DATA is not set"
    )
    assert not (tmp_path / "run").exists()
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text("sentence\tlabel\nfine\t1\n")
    monkeypatch.setenv("TFTRANSFER_DATA", str(tmp_path))
    found = readers.expand_paths("${TFTRANSFER_DATA}/sst2/train.tsv")
    assert found == [str(tmp_path / "sst2" / "train.tsv")]


def test_results_written_to_stdout_leave_it_open(capsys):
    # A notebook or a test calls `cli.main` more than once in one process.
    from tftransfer.cli import records

    records.write_jsonl("-", [{"text": "a"}])
    records.write_jsonl("-", [{"text": "b"}])
    assert capsys.readouterr().out == '{"text": "a"}\n{"text": "b"}\n'
