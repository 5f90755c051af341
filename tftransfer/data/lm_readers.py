"""Read language-model training data: documents, prompt/completion pairs or chats.

Three kinds of input, told apart per record:
- plain text: a `.txt` file (or any file in a folder) is one document; a
  CSV/TSV/JSONL/TFDS text column gives one document per row;
- JSONL objects with `prompt` and `completion`: the loss covers only the
  completion;
- JSONL objects with `messages` (a list of `{"role", "content"}`): rendered
  with the checkpoint's chat template; the loss covers the assistant turns.

One file holds one kind; the split's files must agree.

Example:

>>> import os, tempfile
>>> from tftransfer import configs
>>> from tftransfer.data import lm_readers
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
>>> _ = open(path, "w").write('{"prompt": "2+2=", "completion": " 4"}\\n')
>>> examples = lm_readers.read(configs.InputConfig(path=path))
>>> examples.kind, examples.prompts, examples.completions, examples.sources
('prompt_completion', ['2+2='], [' 4'], ['...pairs.jsonl:1'])
"""

import dataclasses
import os
from typing import List, Optional

from tftransfer.data import readers
from tftransfer.data.data_error import DataError
from tftransfer.data.input_files import expand_variables, file_format, read_files
from tftransfer.data.json_lines import jsonl_records

TEXT, PROMPT_COMPLETION, CHAT = "text", "prompt_completion", "chat"
#: files read whole as one document.
_DOCUMENT_EXTENSIONS = (".txt", ".text", ".md", "")


@dataclasses.dataclass
class LMExamples:
    """Language-model examples, column-wise.

    Attributes:
        kind: `text`, `prompt_completion` or `chat`.
        texts: documents (`text`).
        prompts, completions: the pairs (`prompt_completion`).
        messages: one list of `{"role", "content"}` dicts per chat (`chat`).
        sources: `file:line` (or the file, for whole-file documents).
    """

    kind: str = ""
    texts: List[str] = dataclasses.field(default_factory=list)
    prompts: List[str] = dataclasses.field(default_factory=list)
    completions: List[str] = dataclasses.field(default_factory=list)
    messages: List[list] = dataclasses.field(default_factory=list)
    sources: List[str] = dataclasses.field(default_factory=list)
    max_examples: int = 0

    # Task code reads labels through the common interface; LM data has none.
    labels: Optional[list] = None

    def __len__(self):
        return len(self.sources)

    def full(self):
        return 0 < self.max_examples <= len(self)

    def set_kind(self, kind, where):
        if self.kind and self.kind != kind:
            raise DataError(
                f"{where}: a {kind.replace('_', '/')} record among {self.kind.replace('_', '/')} "
                "records; one split holds one kind of language-model data"
            )
        self.kind = kind


def _text(record, key, where):
    value = record.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: field `{key}` must be text, got {value!r}")
    return value


def _messages(record, where):
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field `messages` must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DataError(f"{where}: messages[{i}] needs a text `content`")
        if message.get("role") not in ("system", "user", "assistant"):
            raise DataError(
                f"{where}: messages[{i}].role must be system, user or assistant; "
                f"got {message.get('role')!r}"
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant message: nothing to learn from this chat")
    return messages


def _read_jsonl(path, text, out, spec):
    for where, record in jsonl_records(path, text):
        if "messages" in record:
            out.set_kind(CHAT, where)
            out.messages.append(_messages(record, where))
        elif "prompt" in record or "completion" in record:
            out.set_kind(PROMPT_COMPLETION, where)
            out.prompts.append(_text(record, "prompt", where))
            completion = _text(record, "completion", where)
            if not completion:
                raise DataError(f"{where}: field `completion` is empty")
            out.completions.append(completion)
        else:
            if spec.text_column not in record:
                raise DataError(
                    f"{where}: expected `messages`, `prompt`+`completion` or "
                    f"`{spec.text_column}` (text_column)"
                )
            out.set_kind(TEXT, where)
            out.texts.append(_text(record, spec.text_column, where))
        out.sources.append(where)
        if out.full():
            return


def _read_document(path, text, out, spec):
    del spec
    if text.strip():
        out.set_kind(TEXT, path)
        out.texts.append(text)
        out.sources.append(path)


def _expand_folders(path):
    parts = []
    for part in path.split(","):
        part = expand_variables(part.strip())
        if os.path.isdir(part):
            files = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(part)
                for name in names
                if not name.startswith(".")
            )
            if not files:
                raise DataError(f"{part}: folder has no files")
            parts.extend(files)
        elif part:
            parts.append(part)
    return ",".join(parts)


def read(spec):
    """Reads one split (a `configs.InputConfig`) of language-model data.

    Returns:
        `LMExamples`.

    Raises:
        DataError: the message names the file, the line and the field.
    """
    out = LMExamples(max_examples=spec.max_examples)
    if spec.path.startswith("tfds:") or spec.format in ("tfds", "csv", "tsv"):
        rows = readers.read(spec, need_labels=False)
        out.kind, out.texts, out.sources = TEXT, rows.texts, rows.sources
        return out
    by_extension = [(".jsonl", "jsonl"), (".json", "jsonl")]
    by_extension += [(".csv", "csv"), (".tsv", "tsv")]

    def format_of(file):
        fmt = file_format(file, spec.format, by_extension, default="text")
        if fmt in ("csv", "tsv"):
            raise DataError(
                f"{file}: CSV/TSV language-model data is read by column: set "
                f"`format: {fmt}` and `text_column`, one file kind per split"
            )
        return fmt

    parsers = {
        "jsonl": lambda file, text, sink: _read_jsonl(file, text, sink, spec),
        "text": lambda file, text, sink: _read_document(file, text, sink, spec),
    }
    read_files(_expand_folders(spec.path), parsers, format_of, spec.encoding, out, what="text")
    return out
