"""Read text examples from CSV, TSV, JSONL files or TFDS datasets.

Readers never tokenize: they return raw strings and raw labels together with
where each example came from (`file:line`), so that every later error can
point at the line to fix.

Example:

>>> from tftransfer import configs
>>> from tftransfer.data import readers
>>> examples = readers.read(configs.InputConfig(path="data/goemotions_sentiment/dev.csv"))
>>> len(examples), examples.labels[0], examples.sources[0]
(600, 'negative', 'data/goemotions_sentiment/dev.csv:2')
"""

import csv
import dataclasses
import functools
import glob
import io
import json
import math
import os
import re
from typing import List, Optional

from tqdm.auto import tqdm


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the field."""


@dataclasses.dataclass
class Examples:
    """Raw examples, column-wise.

    Attributes:
        texts: the first (or only) text of each example.
        text_pairs: the second text, for pair tasks; None otherwise.
        labels: raw labels; None when the data has none. Per example a
            string (`labels="single"`), a list of label strings, possibly
            empty (`"multi"`), or a list of floats (`"float"`).
        sources: `file:line` of each example, for error messages.
        label_names: the label set the data itself declares (the columns
            of `label_columns`), in order; None when it declares none.
    """

    texts: List[str]
    text_pairs: Optional[List[str]]
    labels: Optional[List]
    sources: List[str]
    label_names: Optional[List[str]] = None

    def __len__(self):
        return len(self.texts)


#: the environment variable shipped configs name for the folder holding
#: datasets that cannot be bundled (`${TFTRANSFER_DATA}/sst2/train.tsv`).
DATA_ENV = "TFTRANSFER_DATA"


def expand_variables(part):
    """`part` with `$VAR`/`${VAR}` replaced from the environment; a `DataError` if one is unset."""
    value = os.path.expandvars(part)
    unset = re.findall(r"\$\{?([A-Za-z_]\w*)", value)
    if unset:
        raise DataError(
            f"{part}: ${unset[0]} is not set; export {unset[0]}=<the folder that holds the "
            "data> (the config's comments say what goes there), or give the path itself"
        )
    return value


def expand_paths(path):
    files = []
    for part in path.split(","):
        part = expand_variables(part.strip())
        if not part:
            continue
        if "://" in part:
            # gs:// and other TF filesystems (data beside a TPU's model_dir).
            import tensorflow as tf

            matched = sorted(tf.io.gfile.glob(part))
        else:
            matched = sorted(glob.glob(part))
        if not matched:
            where = "" if os.path.isabs(part) or "://" in part else f" (in {os.getcwd()})"
            raise DataError(f"{part}: no such file{where}")
        files.extend(matched)
    if not files:
        raise DataError("no input path given")
    return files


def file_format(path, explicit, by_extension, default=None):
    """A file's format: `explicit` when set, else by its extension, else `default`.

    Args:
        path: the file.
        explicit: the configured `format` ("" = from the name).
        by_extension: `(extension, format)` pairs, checked in order.
        default: the format of any other name; None = an error.
    """
    if explicit:
        return explicit.lower()
    name = path.lower()
    for ext, fmt in by_extension:
        if name.endswith(ext):
            return fmt
    if default is None:
        known = sorted({fmt for _, fmt in by_extension})
        raise DataError(
            f"{path}: cannot tell the format from the name; set `format` to {', '.join(known)}"
        )
    return default


def read_files(path, parsers, format_of, encoding, sink, what="examples"):
    """The file loop every reader shares: expand, decode, parse, check for emptiness.

    Args:
        path: a file, a glob, or several separated by commas.
        parsers: `{format: parse(file, text, sink)}`.
        format_of: `file -> format` (see `file_format`).
        encoding: text encoding of the files.
        sink: collects what the parsers find; has `__len__` and `full()`
            (`max_examples` reached: reading stops).
        what: the name of an example in "file is empty" errors.
    """
    for file in expand_paths(path):
        fmt = format_of(file)
        if fmt not in parsers:
            raise DataError(f"{file}: unknown format `{fmt}` (use {' or '.join(parsers)})")
        before = len(sink)
        parsers[fmt](file, decode_file(file, encoding), sink)
        if len(sink) == before and not sink.full():
            raise DataError(f"{file}: file is empty (no {what})")
        if sink.full():
            break
    return sink


#: how `read` tells a file's format from its name.
EXTENSIONS = (
    (".tsv", "tsv"),
    (".csv", "csv"),
    (".jsonl", "jsonl"),
    (".json", "jsonl"),
    (".txt", "tsv"),
)


def decode_file(path, encoding):
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    else:
        with open(path, "rb") as f:
            raw = f.read()
    if encoding.lower().replace("-", "") == "utf8" and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a BOM would otherwise become part of the first column name
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: cannot decode byte 0x{raw[e.start]:02x} at column "
            f"{column} as {encoding}; set `encoding` (e.g. latin-1) or fix the file"
        ) from e


#: what `read(labels=...)` makes of each example's label fields.
LABEL_KINDS = ("single", "multi", "float")
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no", ""}


class _Collector:
    """Checks the fields of one example and appends it."""

    def __init__(self, spec, need_labels, labels="single"):
        if labels not in LABEL_KINDS:
            raise ValueError(f"labels must be one of {LABEL_KINDS}, got {labels!r}")
        if labels == "single" and spec.label_columns:
            raise DataError(
                "`label_columns` (one column per label) is for multi-label classification "
                "and regression; this task reads one `label_column`"
            )
        self.spec = spec
        self.need_labels = need_labels
        self.kind = labels
        self.out = Examples(
            [],
            [] if spec.text_pair_column else None,
            [] if need_labels else None,
            [],
            label_names=list(spec.label_columns) or None,
        )

    def label_fields(self):
        """The columns this collector reads labels from."""
        if not self.need_labels:
            return []
        return list(self.spec.label_columns) or [self.spec.label_column]

    def __len__(self):
        return len(self.out)

    def full(self):
        return 0 < self.spec.max_examples <= len(self.out)

    def add(self, get, where):
        spec = self.spec
        text = self._text(get, spec.text_column, where)
        self.out.texts.append(text)
        if spec.text_pair_column:
            self.out.text_pairs.append(self._text(get, spec.text_pair_column, where))
        if self.need_labels:
            read_label = {"single": self._single, "multi": self._multi, "float": self._floats}
            self.out.labels.append(read_label[self.kind](get, where))
        self.out.sources.append(where)

    def _single(self, get, where):
        column = self.spec.label_column
        label = get(column)
        if label is None or str(label).strip() == "":
            raise DataError(f"{where}: field `{column}` (label) is empty")
        return _label_name(label, column, where)

    def _multi(self, get, where):
        """A list of label names: a JSON list, a delimited string or 0/1 columns."""
        spec = self.spec
        if spec.label_columns:
            return [c for c in spec.label_columns if _flag(get(c), c, where)]
        value = get(spec.label_column)
        if value is None:
            return []
        if isinstance(value, list):
            items = [_label_name(v, spec.label_column, where) for v in value]
        elif isinstance(value, str) and spec.label_delimiter:
            items = value.split(spec.label_delimiter)
        else:
            items = [_label_name(value, spec.label_column, where)] if str(value).strip() else []
        # Duplicates say nothing more; a trailing delimiter is not a label.
        return list(dict.fromkeys(i.strip() for i in items if i.strip()))

    def _floats(self, get, where):
        return [_number(get(c), c, where) for c in self.label_fields()]

    @staticmethod
    def _text(get, column, where):
        value = get(column)
        if not isinstance(value, str):
            raise DataError(f"{where}: field `{column}` must be text, got {value!r}")
        if not value.strip():
            raise DataError(f"{where}: field `{column}` is empty")
        return value


def _label_name(value, column, where):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(
            f"{where}: field `{column}` must be a label name or an integer id, got {value!r}"
        )
    return str(value).strip()


def _flag(value, column, where):
    """A 0/1 label column's value as a bool."""
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(
        f"{where}: field `{column}` must be 0 or 1 (label absent/present), got {value!r}"
    )


def _number(value, column, where):
    """A regression target: a finite float."""
    try:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise ValueError
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise DataError(f"{where}: field `{column}` must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: field `{column}` must be a finite number, got {value!r}")
    return number


def _column_index(path, reader, spec, wanted):
    """`(column names, {wanted column: index})` from the header or `column_names`."""
    if spec.has_header:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: file is empty")
        names = [h.strip() for h in header]
    else:
        names = list(spec.column_names)
    index = {}
    for column in wanted:
        if column in names:
            index[column] = names.index(column)
        elif not spec.has_header and not names and column.isdigit():
            index[column] = int(column)
        else:
            where = f"{path}:1" if spec.has_header else path
            what = "header" if spec.has_header else "column_names"
            raise DataError(
                f"{where}: no column `{column}` in the {what} "
                f"(columns: {', '.join(names) or 'none given'})"
            )
    return names, index


def _read_delimited(path, text, collector, fmt):
    spec = collector.spec
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if spec.quoting == "none" else csv.QUOTE_MINIMAL
    # The csv module refuses fields over 128 KiB by default; a long document
    # in one cell is legitimate data (JSONL has no such limit), and no field
    # can be longer than the whole text.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True
    )
    wanted = [c for c in (spec.text_column, spec.text_pair_column) if c]
    wanted += collector.label_fields()
    hint = " (quotes in the text? try `quoting: none`)" if spec.quoting != "none" else ""
    try:
        names, index = _column_index(path, reader, spec, wanted)
        width = len(names) or None
        lines = tqdm(
            reader,
            desc=os.path.basename(path),
            unit=" lines",
            leave=False,
            mininterval=1.0,
            disable=None,
        )
        for row in lines:
            where = f"{path}:{reader.line_num}"
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line is not an example
            if width is not None and len(row) != width:
                raise DataError(
                    f"{where}: expected {width} {fmt.upper()} fields "
                    f"({', '.join(names)}), found {len(row)}{hint}"
                )

            def get(column, row=row, where=where):
                i = index[column]
                if i >= len(row):
                    raise DataError(f"{where}: field `{column}` is missing")
                return row[i]

            collector.add(get, where)
            if collector.full():
                return
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed {fmt.upper()}: {e}") from e


def json_object(where, line):
    """One JSONL line as a dict; `DataError` naming `where` if it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON at column {e.colno}: {e.msg}") from e
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object per line")
    return record


def jsonl_records(path, text):
    """Yields `(file:line, object)` for each non-blank JSONL line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"{path}:{number}"
            yield where, json_object(where, line)


def _read_jsonl(path, text, collector):
    for where, record in jsonl_records(path, text):

        def get(column, record=record, where=where):
            if column not in record:
                raise DataError(f"{where}: missing field `{column}`")
            return record[column]

        collector.add(get, where)
        if collector.full():
            return


def _read_tfds(spec, collector):
    import tensorflow_datasets as tfds

    name = spec.path[len("tfds:") :]
    builder = tfds.builder(name, data_dir=spec.tfds_data_dir or None)
    try:
        dataset = builder.as_dataset(split=spec.split)
    except (AssertionError, ValueError) as e:
        raise DataError(
            f"tfds:{name}: split `{spec.split}` is not prepared in "
            f"`{builder.data_dir}` ({e}); run `tfds build` or give tfds_data_dir"
        ) from e
    features = builder.info.features
    label_names = None
    if collector.need_labels and spec.label_column in features:
        label_names = getattr(features[spec.label_column], "names", None)
    for i, record in enumerate(tfds.as_numpy(dataset)):
        where = f"tfds:{name}[{spec.split}] example {i}"

        def get(column, record=record, where=where):
            if column not in record:
                raise DataError(f"{where}: missing feature `{column}`")
            value = record[column]
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if label_names is not None and column == spec.label_column:
                return label_names[int(value)]
            return int(value) if hasattr(value, "__int__") else value

        collector.add(get, where)
        if collector.full():
            return


def read(spec, need_labels: bool = True, labels: str = "single") -> Examples:
    """Reads all examples of one split.

    Args:
        spec: what to read, a `configs.InputConfig`.
        need_labels: whether every example must have a label.
        labels: what a label is (`LABEL_KINDS`): `single`, one name or id
            from `label_column`; `multi`, a list of names: a JSON list, a
            string split at `label_delimiter`, or the `label_columns` whose
            value is 1; `float`, a list of numbers from `label_columns` (or
            `label_column`).

    Returns:
        `Examples`, in file order.

    Raises:
        DataError: the message names the file, the line and the field.
    """
    collector = _Collector(spec, need_labels, labels)
    if spec.path.startswith("tfds:") or spec.format == "tfds":
        _read_tfds(spec, collector)
        return collector.out
    parsers = {
        "csv": functools.partial(_read_delimited, fmt="csv"),
        "tsv": functools.partial(_read_delimited, fmt="tsv"),
        "jsonl": _read_jsonl,
    }
    read_files(
        spec.path,
        parsers,
        lambda file: file_format(file, spec.format, EXTENSIONS),
        spec.encoding,
        collector,
    )
    if labels == "multi" and collector.out.labels and not spec.label_columns:
        _check_not_joined(spec, collector.out.labels)
    return collector.out


def _check_not_joined(spec, labels):
    """Refuses multi-labels that are mostly lists joined by a delimiter not given (`anger,fear`).

    Split at the wrong `label_delimiter` (or none), such a field is one label,
    and training on `anger,fear` as a class of its own would run without a word.
    """
    found = {name for names in labels for name in names}
    for delimiter in (",", ";", "|"):
        joined = sorted(name for name in found if delimiter in name)
        if joined and len(joined) * 5 >= len(found):
            raise DataError(
                f"{spec.path}: {len(joined)} of {len(found)} labels look like lists joined by "
                f"`{delimiter}` (e.g. `{joined[0]}`); set label_delimiter: '{delimiter}' for "
                "this split"
            )
