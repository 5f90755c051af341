import json
import os
import re
import shutil
import sys

import pytest
from helpers import cli_call, fresh_process

from tftransfer import configs

CLI = [sys.executable, "-m", "tftransfer.cli"]


def _run(args, **kwargs):
    # As from a user's shell: importing tftransfer here set TensorFlow's log level.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(kwargs.pop("env", {}))
    return fresh_process.run(CLI + args, env=env, **kwargs)


@pytest.mark.parametrize(
    "command,flag",
    [
        ("train", "--params_override"),
        ("train", "--mixed_precision"),
        ("train", "--distribution_strategy"),
        ("evaluate", "--split"),
        ("export", "--export_dir"),
        ("predict", "--saved_model"),
    ],
)
def test_help_lists_the_command_flags(command, flag):
    result = _run([command, "--help"])
    assert result.returncode == 0
    assert flag in result.stdout and "--model_dir" in result.stdout


def test_unknown_command_prints_usage():
    result = _run(["fly"])
    assert result.returncode == 2
    assert "train" in result.stderr and "predict" in result.stderr


@pytest.mark.slow
def test_unknown_config_key_is_a_one_line_error_with_status_2(tmp_path):
    result = _run(["train", f"--model_dir={tmp_path}", "--params_override=trainer.epoch=3"])
    assert result.returncode == 2
    assert "unknown config key `trainer.epoch`" in result.stderr
    assert "Traceback" not in result.stderr and "cuInit" not in result.stderr
    assert os.listdir(tmp_path) == []  # nothing written for a config that fails


def test_verbose_raises_an_input_error_instead_of_one_line(tmp_path, monkeypatch):
    # In this process (a fresh one per call costs seconds; the one-line
    # error's fresh-process form is the test above): `--verbose` re-raises,
    # which prints the traceback in a shell.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # --verbose lowers it; restored after
    missing = str(tmp_path / "nope.yaml")
    quiet = cli_call.run("train", f"--model_dir={tmp_path}", f"--config_file={missing}")
    assert quiet.returncode == 2 and len(quiet.error_lines) == 1, quiet
    assert f"config file not found: {missing}" in quiet.stderr
    with pytest.raises(configs.ConfigError, match=f"config file not found: {missing}"):
        cli_call.run("train", f"--model_dir={tmp_path}", f"--config_file={missing}", "--verbose")


@pytest.mark.slow
def test_train_evaluate_export_predict(tmp_path, tiny_preset, sentiment_tsv):
    config = tmp_path / "exp.yaml"
    config.write_text(
        "task:\n  text_classification:\n    max_seq_length: 32\n    pooling: mean\n"
        f"backbone:\n  spec: {tiny_preset}\n"
        "data:\n"
        f"  train: {{path: {sentiment_tsv}, text_column: sentence}}\n"
        f"  validation: {{path: {sentiment_tsv}, text_column: sentence}}\n"
        "trainer:\n  batch_size: 8\n  epochs: 1\n  learning_rate: 0.003\n"
    )
    run = str(tmp_path / "run")
    result = _run(
        [
            "train",
            f"--config_file={config}",
            "--params_override=trainer.epochs=2,runtime.mixed_precision=float16",
            f"--model_dir={run}",
            # Flags win over the config and --params_override.
            "--distribution_strategy=mirrored",
            "--mixed_precision=bfloat16",
            "--steps_per_execution=3",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "accuracy=" in result.stdout
    # The library's lines show, TensorFlow's INFO at each checkpoint save does not.
    assert "Training " in result.stderr and "Sharding callback" not in result.stderr
    with open(os.path.join(run, "params.yaml")) as f:
        saved = f.read()
    assert "epochs: 2" in saved and "steps_per_execution: 3" in saved
    assert "mixed_precision: bfloat16" in saved and "distribution_strategy: mirrored" in saved

    result = _run(["evaluate", f"--model_dir={run}"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["examples"] == 56

    # float32 as `predict` on the run folder (the export would follow the run's bfloat16).
    srv = f"--export_dir={tmp_path / 'srv'}"
    result = _run(["export", f"--model_dir={run}", srv, "--mixed_precision=float32"])
    assert result.returncode == 0, result.stderr
    assert os.path.exists(tmp_path / "srv" / "1" / "saved_model.pb")
    assert "signature serving_default: inputs {'text'" in result.stdout

    texts = 'great movie\n{"text": "awful film", "id": 7}\n'
    by_checkpoint = _run(["predict", f"--model_dir={run}"], input=texts)
    by_export = _run(["predict", f"--saved_model={tmp_path / 'srv' / '1'}"], input=texts)
    assert by_checkpoint.returncode == 0, by_checkpoint.stderr
    assert by_export.returncode == 0, by_export.stderr
    a = [json.loads(line) for line in by_checkpoint.stdout.splitlines()]
    b = [json.loads(line) for line in by_export.stdout.splitlines()]
    assert [r["text"] for r in a] == ["great movie", "awful film"]
    assert a[1]["id"] == 7
    assert [r["labels"] for r in a] == [r["labels"] for r in b]
    assert [list(r) for r in a] == [list(r) for r in b]  # same keys in the same order
    for x, y in zip(a, b):
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("fine\nna\u00efve and s\u00fcss\n".encode("latin-1"))
    # (The export: loading it is quicker than rebuilding the model.)
    export = f"--saved_model={tmp_path / 'srv' / '1'}"
    refused = cli_call.run("predict", export, f"--input={latin1}")
    assert refused.returncode == 2
    assert f"{latin1}:2: not utf-8 text" in refused.stderr and "--encoding" in refused.stderr
    read = cli_call.run("predict", export, f"--input={latin1}", "--encoding=latin-1")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout.splitlines()[1])["text"] == "na\u00efve and s\u00fcss"

    # Mistakes with a run folder end in one line, and touch nothing.
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("once upon a time\n")
    for source in (f"--model_dir={run}", export):
        refused = cli_call.run("generate", source, f"--input={prompts}")
        assert refused.returncode == 2 and len(refused.error_lines) == 1, refused
        assert "does not generate text; use `tftransfer predict`" in refused.stderr
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("keep me")
    refused = cli_call.run("export", f"--model_dir={run}", f"--export_dir={a_file}")
    assert refused.returncode == 2 and len(refused.error_lines) == 1, refused
    assert f"export folder {a_file} is a file" in refused.stderr
    assert a_file.read_text() == "keep me"
    edited = tmp_path / "edited"
    shutil.copytree(run, edited)
    params = (edited / "params.yaml").read_text()
    (edited / "params.yaml").write_text(
        params.replace("    - positive\n", "    - positive\n    - neutral\n")
    )
    refused = cli_call.run("predict", f"--model_dir={edited}", f"--input={prompts}")
    assert refused.returncode == 2 and len(refused.error_lines) == 1, refused
    assert "was the config edited after training?" in refused.stderr
    no_labels = re.sub(r"    labels:\n(    - .*\n)+", "    labels: []\n", params)
    (edited / "params.yaml").write_text(no_labels)
    refused = cli_call.run("export", f"--model_dir={edited}")
    assert refused.returncode == 2 and len(refused.error_lines) == 1, refused
    assert "params.yaml does not describe a model (was it edited" in refused.stderr
