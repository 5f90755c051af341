"""Find, decode and parse the files of one split, shared by every reader.

A split's `path` is a file, a glob or several separated by commas, with
`$VAR`/`${VAR}` taken from the environment; `gs://` and other TensorFlow
filesystems work too. Each error names the file (and the line, for bytes
that do not decode).

Example:

>>> from tftransfer.data import input_files
>>> input_files.expand_paths("data/goemotions_sentiment/*.csv")
['data/goemotions_sentiment/dev.csv', 'data/goemotions_sentiment/train.csv']
>>> input_files.file_format("train.tsv", "", [(".tsv", "tsv"), (".csv", "csv")])
'tsv'
"""

import glob
import os
import re

from tftransfer.data.data_error import DataError

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
    """The files `path` names (comma-separated files or globs), each glob's sorted."""
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


def decode_file(path, encoding):
    """A file's text; bytes that do not decode are a `DataError` naming line and column."""
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
