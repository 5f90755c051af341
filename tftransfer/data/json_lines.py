"""JSON Lines: one JSON object per line, each error naming its `file:line`.

Example:

>>> from tftransfer.data import json_lines
>>> list(json_lines.jsonl_records("a.jsonl", '{"text": "hi"}\\n\\n{"text": "yo"}\\n'))
[('a.jsonl:1', {'text': 'hi'}), ('a.jsonl:3', {'text': 'yo'})]
>>> json_lines.json_object("a.jsonl:2", "[1, 2]")
Traceback (most recent call last):
...
tftransfer.data.data_error.DataError: a.jsonl:2: expected a JSON object per line
"""

import json

from tftransfer.data.data_error import DataError


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
