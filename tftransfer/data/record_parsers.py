"""CSV/TSV rows, JSONL objects and TFDS records, handed to an `ExampleCollector`.

Each parser gives the collector one record at a time as `get(column)` and its
`file:line` (`tfds:<name>[<split>] example <i>` for TFDS), and stops once the
collector is full (`max_examples`). A column the record lacks is a
`DataError` naming the line and the field.

Example:

>>> from tftransfer.data.data_config import InputConfig
>>> from tftransfer.data import raw_examples, record_parsers
>>> collector = raw_examples.ExampleCollector(InputConfig(), need_labels=True)
>>> record_parsers.read_delimited("f.csv", "text,label\\nso good,positive\\n", collector, "csv")
>>> collector.out.texts, collector.out.labels, collector.out.sources
(['so good'], ['positive'], ['f.csv:2'])
"""

import csv
import io
import os

from tqdm.auto import tqdm

from tftransfer.data import tfds_records
from tftransfer.data.data_error import DataError
from tftransfer.data.json_lines import jsonl_records


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


def read_delimited(path, text, collector, fmt):
    """Feeds `collector` the rows of one CSV (`fmt="csv"`) or TSV (`"tsv"`) file's `text`."""
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


def read_jsonl(path, text, collector):
    """Feeds `collector` the objects of one JSONL file's `text`."""
    for where, record in jsonl_records(path, text):

        def get(column, record=record, where=where):
            if column not in record:
                raise DataError(f"{where}: missing field `{column}`")
            return record[column]

        collector.add(get, where)
        if collector.full():
            return


def read_tfds(spec, collector):
    """Feeds `collector` the records of `spec.split` of the TFDS dataset `spec.path` names."""
    for where, record in tfds_records.records(spec):

        def get(column, record=record, where=where):
            if column not in record:
                raise DataError(f"{where}: missing feature `{column}`")
            return record[column]

        collector.add(get, where)
        if collector.full():
            return
