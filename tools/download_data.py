"""Downloads the public datasets that TensorFlow Datasets does not carry.

The shipped configs read SST-2, TREC, CoNLL-2003, SQuAD and GoEmotions from
TFDS (`path: tfds:<name>`). WNUT-17, ChnSentiCorp and SNLI's annotator labels
(for `tools/make_snli_agreement.py`) are not there; this tool puts their
original files where the configs look for them, `$TFTRANSFER_DATA/<dataset>/`,
and checks each file's sha256 against a pinned value (ChnSentiCorp and SNLI
dev/test: the copies our benchmarks used; WNUT-17: the values Hugging Face's
loader pins; SNLI's train file, which no benchmark reads, is not pinned), so a
changed upstream file is an error rather than a silently different result.

Usage:
    export TFTRANSFER_DATA=~/tftransfer_data
    python tools/download_data.py --datasets=wnut17,chnsenticorp,snli_1.0

Licences: WNUT-17 CC BY 4.0; SNLI CC BY-SA 4.0; ChnSentiCorp non-commercial
research or teaching use only (Baidu's LUGE agreement).
"""

import dataclasses
import hashlib
import os
import shutil
import tempfile
import zipfile
from typing import Dict, Optional

from absl import app, flags

flags.DEFINE_list("datasets", ["wnut17", "chnsenticorp", "snli_1.0"], "Which datasets.")
flags.DEFINE_string(
    "data_dir", os.environ.get("TFTRANSFER_DATA", ""), "Where they go ($TFTRANSFER_DATA)."
)
FLAGS = flags.FLAGS

_WNUT = "https://raw.githubusercontent.com/leondz/emerging_entities_17/" + (
    "e52a2d2a71ac1a051ca2d532eef28653c5c02603/"
)


@dataclasses.dataclass
class Source:
    """Where a dataset's files come from.

    Attributes:
        url: a file, or a zip holding the files (`archive`).
        files: each file kept, by name, and its sha256 (None: not checked).
        archive: whether `url` is a zip whose members (found by file name)
            are `files`; else each file is at `url` + its name.
    """

    url: str
    files: Dict[str, Optional[str]]
    archive: bool = False


SOURCES = {
    # The three files Hugging Face's `wnut_17` loader reads, at the commit
    # whose sha256s its dataset_infos.json pins.
    "wnut17": Source(
        url=_WNUT,
        files={
            "wnut17train.conll": "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5",
            "emerging.dev.conll": (
                "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8"
            ),
            "emerging.test.annotated": (
                "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0"
            ),
        },
    ),
    # Baidu ERNIE's release (labelled test), as Chinese-BERT-wwm ships it.
    "chnsenticorp": Source(
        url="https://raw.githubusercontent.com/ymcui/Chinese-BERT-wwm/"
        "f6410cbd89c49dee8a42a7f7d94d9cca87b431aa/data/chnsenticorp/chnsenticorp.zip",
        files={
            "train.tsv": "0b2653c23e5c79f539472e90cb10522f0ada4b80d3da95572d8b48fda47d5b33",
            "dev.tsv": "d129e443eac08ce7643013dad496a8edf282be39cac1a4f2ad080818b296b331",
            "test.tsv": "34f9d71eba6096cd8689e18913d28cf9a5f3c18a6c2804cd13304a321738c4bc",
        },
        archive=True,
    ),
    "snli_1.0": Source(
        url="https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
        files={
            "snli_1.0_dev.jsonl": (
                "9c03faff70182ef086ebfeed2cffbabb5fcc6a84a8b3314decbbb5b01f07f4bf"
            ),
            "snli_1.0_test.jsonl": (
                "1147550151ca8b16ddb31d8dc0e739a670a65f7c3e64aac5951eaeff103fb220"
            ),
            "snli_1.0_train.jsonl": None,
        },
        archive=True,
    ),
}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path, name, expected, origin):
    got = sha256(path)
    if expected and got != expected:
        raise ValueError(
            f"{origin}: `{name}` has sha256 {got}, expected {expected} (the file changed "
            "upstream or the download is corrupt; nothing was written)"
        )


def _fetch(url, name, cache):
    # keras.utils.get_file: progress bar, cache, and file:// URLs for tests.
    import keras

    return keras.utils.get_file(name, origin=url, cache_dir=cache, cache_subdir=".")


def _unzip(archive, names, work):
    """`{name: extracted path}` for the members of `archive` whose file names are `names`."""
    found = {}
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            base = os.path.basename(member.filename)
            if base in names and not member.is_dir():
                found[base] = z.extract(member, work)
    missing = sorted(set(names) - set(found))
    if missing:
        raise ValueError(f"{archive}: the archive holds no {', '.join(missing)}")
    return found


def download(dataset, data_dir):
    """Puts `dataset`'s files into `data_dir/dataset/`, each checked; returns the folder.

    Files are checked before anything is moved into place, so a failed
    download leaves no partial dataset behind.
    """
    source = SOURCES[dataset]
    target = os.path.join(data_dir, dataset)
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=f".{dataset}_") as work:
        if source.archive:
            archive = _fetch(source.url, os.path.basename(source.url), work)
            paths = _unzip(archive, source.files, work)
        else:
            paths = {name: _fetch(source.url + name, name, work) for name in source.files}
        for name, path in paths.items():
            _check(path, name, source.files[name], source.url)
        staged = os.path.join(work, "staged")
        os.makedirs(staged)
        for name, path in paths.items():
            shutil.move(path, os.path.join(staged, name))
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.rename(staged, target)
    return target


def main(argv):
    del argv
    if not FLAGS.data_dir:
        raise app.UsageError("give --data_dir or set TFTRANSFER_DATA")
    unknown = sorted(set(FLAGS.datasets) - set(SOURCES))
    if unknown:
        raise app.UsageError(f"unknown datasets {unknown}; known: {', '.join(SOURCES)}")
    for dataset in FLAGS.datasets:
        print(f"{dataset}: {download(dataset, FLAGS.data_dir)}")


if __name__ == "__main__":
    app.run(main)
