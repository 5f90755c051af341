import json

import pytest

from tftransfer import configs
from tftransfer.data import readers
from tftransfer.data.readers import DataError


def InputSpec(path, **kwargs):
    return configs.InputConfig(path=path, **kwargs)


def _write(path, text, mode="w"):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_with_quotes_and_pairs(tmp_path):
    path = _write(tmp_path / "d.csv", 'a,b,y\n"hello, world",there,pos\nbye,"he said ""no""",neg\n')
    ex = readers.read(InputSpec(path, text_column="a", text_pair_column="b", label_column="y"))
    assert ex.texts == ["hello, world", "bye"]
    assert ex.text_pairs == ["there", 'he said "no"']
    assert ex.labels == ["pos", "neg"]
    assert ex.sources == [f"{path}:2", f"{path}:3"]


def test_tsv_quoting_none_keeps_quotes(tmp_path):
    # GLUE TSVs: quotes are part of the text and must survive.
    path = _write(tmp_path / "d.tsv", "sentence\tlabel\n\"a quoted\" start \t1\nit 's ``ok'' \t0\n")
    ex = readers.read(InputSpec(path, text_column="sentence", quoting="none"))
    assert ex.texts == ['"a quoted" start ', "it 's ``ok'' "]
    assert ex.labels == ["1", "0"]


@pytest.mark.parametrize("quoting", ["minimal", "none"])
def test_a_one_megabyte_field_is_read_whole(tmp_path, quoting):
    document = "word " * 200_000  # 1 MB: eight times the csv module's default limit
    path = _write(tmp_path / "long.csv", f"text,label\n{document},pos\nshort,neg\n")
    ex = readers.read(InputSpec(path, text_column="text", label_column="label", quoting=quoting))
    assert ex.texts == [document, "short"] and ex.labels == ["pos", "neg"]


def test_headerless_with_column_names_and_max_examples(tmp_path):
    path = _write(tmp_path / "g.tsv", "first\t1,2\tid1\nsecond\t3\tid2\nthird\t4\tid3\n")
    spec = InputSpec(path, has_header=False, column_names=["text", "label", "id"], max_examples=2)
    ex = readers.read(spec)
    assert ex.texts == ["first", "second"]
    assert ex.labels == ["1,2", "3"]


def test_jsonl_and_ids_as_labels(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        json.dumps({"text": "x", "label": 1})
        + "\n\n"
        + json.dumps({"text": "y", "label": "neg"})
        + "\n",
    )
    ex = readers.read(InputSpec(path))
    assert ex.labels == ["1", "neg"]
    assert ex.sources[1].endswith(":3")


def test_multiple_files_by_glob(tmp_path):
    _write(tmp_path / "p1.csv", "text,label\na,x\n")
    _write(tmp_path / "p2.csv", "text,label\nb,y\n")
    ex = readers.read(InputSpec(str(tmp_path / "p*.csv")))
    assert ex.texts == ["a", "b"]


def test_predict_without_labels(tmp_path):
    path = _write(tmp_path / "d.csv", "text\nonly text\n")
    ex = readers.read(InputSpec(path), need_labels=False)
    assert ex.labels is None and ex.texts == ["only text"]


@pytest.mark.parametrize(
    "name,content,spec_kwargs,pattern",
    [
        ("missing.csv", "txt,label\na,b\n", {}, r"missing.csv:1: no column `text`"),
        (
            "empty_text.csv",
            "text,label\nfine,a\n  ,b\n",
            {},
            r"empty_text.csv:3: field `text` is empty",
        ),
        (
            "empty_label.csv",
            "text,label\nfine,\n",
            {},
            r"empty_label.csv:2: field `label` \(label\) is empty",
        ),
        ("fields.tsv", "text\tlabel\na\tb\tc\n", {}, r"fields.tsv:2: expected 2 TSV fields"),
        ("empty.csv", "", {}, r"empty.csv: file is empty"),
        ("header_only.csv", "text,label\n", {}, r"header_only.csv: file is empty"),
        (
            "bytes.csv",
            b"text,label\nok,a\nbad \xf0\x28 byte,b\n",
            {},
            r"bytes.csv:3: cannot decode byte 0xf0 at column 5 as utf-8",
        ),
        (
            "broken.jsonl",
            '{"text": "a", "label": "x"}\n{"text": "b",\n',
            {},
            r"broken.jsonl:2: invalid JSON",
        ),
        ("nokey.jsonl", '{"txt": "a", "label": "x"}\n', {}, r"nokey.jsonl:1: missing field `text`"),
        (
            "notext.jsonl",
            '{"text": 3, "label": "x"}\n',
            {},
            r"notext.jsonl:1: field `text` must be text",
        ),
        ("weird.dat", "a\n", {}, r"weird.dat: cannot tell the format"),
    ],
)
def test_bad_input_names_file_line_field(tmp_path, name, content, spec_kwargs, pattern):
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=pattern):
        readers.read(InputSpec(path, **spec_kwargs))


def test_missing_file(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no such file"):
        readers.read(InputSpec(str(tmp_path / "none.csv")))
    # A relative path says which folder it was looked for in.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=f"^data/none.csv: no such file \\(in {tmp_path}\\)$"):
        readers.read(InputSpec("data/none.csv"))


def test_latin1_encoding(tmp_path):
    path = _write(tmp_path / "l.tsv", "text\tlabel\nsister\xf0city\tLOC\n".encode("latin-1"))
    ex = readers.read(InputSpec(path, encoding="latin-1"))
    assert ex.texts == ["sister\xf0city"]


def test_utf8_bom_is_not_part_of_the_header(tmp_path):
    path = _write(tmp_path / "bom.tsv", "\ufefftext\tlabel\nhi\t1\n")
    assert readers.read(InputSpec(path)).texts == ["hi"]
