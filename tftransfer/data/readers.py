"""Read text examples from CSV, TSV, JSONL files or TFDS datasets.

Readers never tokenize: they return raw strings and raw labels together with
where each example came from (`file:line`), so that every later error can
point at the line to fix.

This module is the entry point; the pieces live in `data_error`
(`DataError`), `input_files` (paths, `${VAR}`s, decoding, the file loop),
`json_lines`, `record_parsers` (CSV/TSV, JSONL and TFDS records),
`raw_examples` (`Examples` and the checks of each example's fields) and
`label_values` (label names, 0/1 flags, numbers).

Example:

>>> from tftransfer import configs
>>> from tftransfer.data import readers
>>> examples = readers.read(configs.InputConfig(path="data/goemotions_sentiment/dev.csv"))
>>> len(examples), examples.labels[0], examples.sources[0]
(600, 'negative', 'data/goemotions_sentiment/dev.csv:2')
"""

import functools

from tftransfer.data.data_error import DataError
from tftransfer.data.input_files import expand_paths, file_format, read_files
from tftransfer.data.json_lines import json_object
from tftransfer.data.label_values import LABEL_KINDS, check_not_joined
from tftransfer.data.raw_examples import ExampleCollector, Examples
from tftransfer.data.record_parsers import read_delimited, read_jsonl, read_tfds

__all__ = [
    "EXTENSIONS",
    "LABEL_KINDS",
    "DataError",
    "Examples",
    "expand_paths",
    "json_object",
    "read",
]

#: how `read` tells a file's format from its name.
EXTENSIONS = (
    (".tsv", "tsv"),
    (".csv", "csv"),
    (".jsonl", "jsonl"),
    (".json", "jsonl"),
    (".txt", "tsv"),
)


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
    collector = ExampleCollector(spec, need_labels, labels)
    if spec.path.startswith("tfds:") or spec.format == "tfds":
        read_tfds(spec, collector)
        return collector.out
    parsers = {
        "csv": functools.partial(read_delimited, fmt="csv"),
        "tsv": functools.partial(read_delimited, fmt="tsv"),
        "jsonl": read_jsonl,
    }
    read_files(
        spec.path,
        parsers,
        lambda file: file_format(file, spec.format, EXTENSIONS),
        spec.encoding,
        collector,
    )
    if labels == "multi" and collector.out.labels and not spec.label_columns:
        check_not_joined(spec, collector.out.labels)
    return collector.out
