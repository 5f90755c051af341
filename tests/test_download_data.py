import hashlib
import os
import sys
import zipfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import download_data  # noqa: E402


def _sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local copy of two sources: plain files, and a zip with a folder inside."""
    files = tmp_path / "mirror"
    files.mkdir()
    (files / "a.conll").write_bytes(b"Paris\tB-location\n\n")
    (files / "b.conll").write_bytes(b"Rome\tB-location\n\n")
    with zipfile.ZipFile(files / "set.zip", "w") as z:
        z.writestr("set/train.tsv", b"label\ttext_a\n1\tgood\n")
        z.writestr("set/README", b"not kept")
    sources = {
        "plain": download_data.Source(
            url=files.as_uri() + "/",
            files={"a.conll": _sha(b"Paris\tB-location\n\n"), "b.conll": None},
        ),
        "zipped": download_data.Source(
            url=(files / "set.zip").as_uri(),
            files={"train.tsv": _sha(b"label\ttext_a\n1\tgood\n")},
            archive=True,
        ),
    }
    monkeypatch.setattr(download_data, "SOURCES", sources)
    return sources


def test_files_and_archive_members_land_in_the_dataset_folder(mirror, tmp_path):
    data = tmp_path / "data"
    assert download_data.download("plain", str(data)) == str(data / "plain")
    download_data.download("zipped", str(data))
    assert sorted(os.listdir(data / "plain")) == ["a.conll", "b.conll"]
    assert os.listdir(data / "zipped") == ["train.tsv"]
    assert (data / "zipped" / "train.tsv").read_bytes() == b"label\ttext_a\n1\tgood\n"
    assert sorted(os.listdir(data)) == ["plain", "zipped"]  # no work folders left


def test_a_changed_file_is_refused_and_the_old_copy_stays(mirror, tmp_path):
    data = tmp_path / "data"
    download_data.download("plain", str(data))
    (tmp_path / "mirror" / "a.conll").write_bytes(b"Paris\tB-person\n\n")
    with pytest.raises(ValueError, match=r"`a.conll` has sha256 [0-9a-f]{64}, expected"):
        download_data.download("plain", str(data))
    assert (data / "plain" / "a.conll").read_bytes() == b"Paris\tB-location\n\n"
    assert sorted(os.listdir(data)) == ["plain"]


def test_an_archive_without_a_file_names_it(mirror, tmp_path):
    mirror["zipped"].files["dev.tsv"] = None
    with pytest.raises(ValueError, match="set.zip: the archive holds no dev.tsv"):
        download_data.download("zipped", str(tmp_path / "data"))
