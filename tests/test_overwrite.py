"""`train --overwrite` and `--output` never destroy a user's files."""

import pytest

from tftransfer import backbones, configs
from tftransfer.cli import records
from tftransfer.data.readers import DataError
from tftransfer.training import overwrite


def test_a_folder_without_a_run_is_not_emptied(tmp_path):
    (tmp_path / "thesis.tex").write_text("chapter 1")
    with pytest.raises(configs.ConfigError, match="holds no tftransfer run"):
        overwrite.clear_folder(str(tmp_path))
    assert (tmp_path / "thesis.tex").read_text() == "chapter 1"


def test_a_run_folder_is_emptied(tmp_path):
    (tmp_path / "params.yaml").write_text("# a run\n")
    (tmp_path / "checkpoints").mkdir()
    overwrite.clear_folder(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_wrong_data_path_or_backbone_is_found_before_anything_is_deleted(tiny_params, tmp_path):
    (tmp_path / "params.yaml").write_text("# an earlier run\n")
    missing = tmp_path / "missing.tsv"
    tiny_params.override({"data": {"validation": {"path": str(missing)}}})
    with pytest.raises(DataError, match=f"{missing}: no such file"):
        overwrite.check(tiny_params, str(tmp_path))
    tiny_params.override({"data": {"validation": {"path": ""}}})
    tiny_params.override({"backbone": {"spec": str(tmp_path / "no_backbone")}})
    with pytest.raises(backbones.BackboneError, match="does not exist"):
        overwrite.check(tiny_params, str(tmp_path))
    assert (tmp_path / "params.yaml").read_text() == "# an earlier run\n"


def test_output_may_not_be_the_input(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("great movie\n")
    with pytest.raises(DataError, match="is the input file"):
        records.check_output(str(texts), str(texts))
    link = tmp_path / "link.txt"
    link.symlink_to(texts)
    with pytest.raises(DataError, match="is the input file"):
        records.check_output(str(link), str(texts))
    records.check_output(str(tmp_path / "out.jsonl"), str(texts))  # a new file is fine
    records.check_output("-", str(texts))
    assert texts.read_text() == "great movie\n"
