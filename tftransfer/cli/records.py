"""What `tftransfer predict` and `generate` read and write: text lines and JSONL records.

Example:

>>> import os, tempfile
>>> from tftransfer.cli import records
>>> path = os.path.join(tempfile.mkdtemp(), "texts.jsonl")
>>> records.write_jsonl(path, [{"text": "naïve", "id": 7}])
>>> list(records.read_records(path))
[{'text': 'naïve', 'id': 7}]
"""

import contextlib
import json
import os
import sys


def read_records(path, encoding="utf-8"):
    """Yields the texts to predict, line by line: plain lines or JSONL objects."""
    from tftransfer import tasks
    from tftransfer.data import readers

    # Every registered task's (plugins too): the model is not loaded yet.
    fields = dict.fromkeys(f for t in tasks.registered().values() for f in t.input_text_fields)
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    with stream:
        # Lines are decoded one by one, so a bad byte is reported with its line.
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
                if number == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark is not text
            except UnicodeDecodeError as e:
                raise readers.DataError(
                    f"{path}:{number}: not {encoding} text (byte {raw[e.start]:#04x} at "
                    f"column {e.start + 1}); give the file's encoding, e.g. --encoding=latin-1"
                ) from None
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                record = readers.json_object(f"{path}:{number}", line)
                for key in fields:
                    value = record.get(key)
                    if isinstance(value, str) and not value.strip():
                        # As in training data: an empty field is a mistake in the file.
                        raise readers.DataError(f"{path}:{number}: field `{key}` is empty")
                yield record
            else:
                yield {"text": line}


def check_output(output, source):
    """Refuses an `--output` that is the `--input` file: opening it would empty it first."""
    from tftransfer.data.readers import DataError

    if "-" in (output, source) or not (os.path.exists(output) and os.path.exists(source)):
        return
    if os.path.samefile(output, source):
        raise DataError(
            f"--output={output} is the input file: writing it would empty it before it is "
            "read; give another --output"
        )


def write_jsonl(path, results):
    """One JSON object per line to `path` (`-`: stdout), flushed as they come."""
    # stdout stays open: `cli.main` may be called again in the same process.
    out = contextlib.nullcontext(sys.stdout) if path == "-" else open(path, "w", encoding="utf-8")
    with out as out:
        for result in results:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()


def read_prompts(path, encoding="utf-8"):
    """Prompts from plain lines or JSONL objects with `prompt`."""
    from tftransfer.data.readers import DataError

    prompts = []
    for number, record in enumerate(read_records(path, encoding), start=1):
        prompt = record.get("prompt", record.get("text"))
        if not isinstance(prompt, str):
            raise DataError(f"{path}: prompt {number} needs a text field `prompt`")
        prompts.append(prompt)
    return prompts
