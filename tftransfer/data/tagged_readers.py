"""Read token-tagged sentences (NER) from CoNLL-style files or JSONL.

CoNLL: one token per line, the token in the first column and its tag in the
last (columns split on tabs when the line has one, else on whitespace; middle
columns such as POS and chunk tags are ignored); a blank or whitespace-only
line ends a sentence; `-DOCSTART-` lines are dropped (they, and the start of
each file, begin a new document). JSONL: one object per
line with a list of tokens and a list of tags; TFDS datasets (`tfds:conll2003`)
the same per example. Tags are converted to IOB2
(see `tag_schemes`); every error names the file and the line.

Example:

>>> from tftransfer.data import tagged_readers
>>> sentences = tagged_readers.read("data/wnut17_sample/dev.conll")
>>> len(sentences), sentences.sources[0]
(300, 'data/wnut17_sample/dev.conll:1')
"""

import dataclasses
from typing import List, Optional

import numpy as np

from tftransfer.data import tag_schemes, tfds_records
from tftransfer.data.data_error import DataError
from tftransfer.data.input_files import file_format, read_files
from tftransfer.data.json_lines import jsonl_records


@dataclasses.dataclass
class TaggedExamples:
    """Sentences, token-wise.

    Attributes:
        tokens: the words of each sentence.
        tags: IOB2 tags per word; None when the data has no tags.
        sources: `file:line` where each sentence starts.
        token_lines: the line number of each token (CoNLL: one line per
            token; JSONL: the record's line).
        documents: the document index of each sentence, counting from 0
            (CoNLL: a new document at each `-DOCSTART-` and each file;
            JSONL: each record is its own document).
    """

    tokens: List[List[str]]
    tags: Optional[List[List[str]]]
    sources: List[str]
    token_lines: List[List[int]] = dataclasses.field(default_factory=list)
    documents: List[int] = dataclasses.field(default_factory=list)

    def where(self, sentence, token):
        """`file:line` of one token (a TFDS example and the token's index), for error messages."""
        source = self.sources[sentence]
        path, _, line = source.rpartition(":")
        if not line.isdigit():
            return f"{source} token {token}"
        return f"{path}:{self.token_lines[sentence][token]}"

    def __len__(self):
        return len(self.tokens)

    def tag_ids(self, labels):
        """Each sentence's tags as int32 ids into `labels`; an unknown tag is a `DataError`."""
        index = {name: i for i, name in enumerate(labels)}
        out = []
        for s, tags in enumerate(self.tags):
            ids = [index.get(tag, -1) for tag in tags]
            if -1 in ids:
                t = ids.index(-1)
                raise DataError(
                    f"{self.where(s, t)}: unknown tag `{tags[t]}` for token "
                    f"`{self.tokens[s][t]}` (the model knows: {', '.join(labels)})"
                )
            out.append(np.asarray(ids, np.int32))
        return out


def _conll_sentences(path, text, need_tags):
    """Yields (tokens, tags, lines, `file:line`, new document) per sentence."""
    tokens, tags, lines, start = [], [], [], None
    width = None
    new_document = True
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if tokens:
                yield tokens, tags, lines, start, new_document
                new_document = False
            tokens, tags, lines, start = [], [], [], None
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if fields[0] == "-DOCSTART-":
            if tokens:  # a marker with no blank line before it still ends the sentence
                yield tokens, tags, lines, start, new_document
                tokens, tags, lines, start = [], [], [], None
            new_document = True
            continue
        where = f"{path}:{number}"
        if need_tags:
            if len(fields) < 2:
                raise DataError(f"{where}: expected a token and a tag, found {line!r}")
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise DataError(
                    f"{where}: expected {width} columns like the file's first token line, "
                    f"found {len(fields)}"
                )
        if not fields[0]:
            raise DataError(f"{where}: empty token")
        start = start or where
        tokens.append(fields[0])
        lines.append(number)
        tags.append((fields[-1], where) if need_tags else None)
    if tokens:
        yield tokens, tags, lines, start, new_document


def empty_token_problem(tokens):
    """What is wrong with a list of tokens holding an empty one, or None."""
    empty = [i for i, t in enumerate(tokens) if not t.strip()]
    if empty:
        return f"holds an empty token at position {empty[0]} (tokens are words: drop it)"
    return None


def _record_sentence(where, record, need_tags, tokens_key, tags_key):
    """`(tokens, tagged)` of one JSONL object or TFDS record; a `DataError` names `where`."""
    tokens = record.get(tokens_key)
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataError(f"{where}: field `{tokens_key}` must be a list of strings")
    problem = empty_token_problem(tokens)
    if problem:
        raise DataError(f"{where}: field `{tokens_key}` {problem}")
    if not tokens:
        raise DataError(f"{where}: sentence with no tokens")
    if not need_tags:
        return tokens, None
    tags = record.get(tags_key)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DataError(f"{where}: field `{tags_key}` must be a list of strings")
    if len(tags) != len(tokens):
        raise DataError(
            f"{where}: {len(tokens)} tokens but {len(tags)} tags "
            f"(`{tokens_key}` and `{tags_key}` must have the same length)"
        )
    return tokens, [(t, where) for t in tags]


def _jsonl_sentences(path, text, need_tags, tokens_key, tags_key):
    for where, record in jsonl_records(path, text):
        tokens, tags = _record_sentence(where, record, need_tags, tokens_key, tags_key)
        line = int(where.rsplit(":", 1)[1])
        yield tokens, tags, [line] * len(tokens), where, True


def _tfds_sentences(spec, need_tags):
    # TFDS sets such as `conll2003` keep one sentence per example, tags as
    # `ClassLabel` sequences (names once `tfds_records` has decoded them).
    for where, record in tfds_records.records(spec):
        tokens, tags = _record_sentence(
            where, record, need_tags, spec.tokens_column, spec.tags_column
        )
        yield tokens, tags, [0] * len(tokens), where, True


def read(
    path,
    format="",
    encoding="utf-8",
    tag_scheme="auto",
    tokens_key="tokens",
    tags_key="tags",
    need_tags=True,
    max_examples=0,
):
    """Reads tagged sentences from CoNLL or JSONL files.

    Args:
        path: a file, a glob, or several separated by commas.
        format: `conll` or `jsonl`; empty = `jsonl` for `.jsonl`/`.json`,
            else `conll`.
        encoding: text encoding.
        tag_scheme: `auto`, `iob1`, `iob2` or `bioes`; tags become IOB2.
        tokens_key, tags_key: JSONL field names.
        need_tags: whether every token must have a tag.
        max_examples: read at most this many sentences (0 = all).

    Returns:
        `TaggedExamples` with IOB2 tags.

    Raises:
        DataError: the message names the file and the line.
    """
    sink = _Sentences(need_tags, tag_scheme, max_examples)

    def parser(sentences):
        def parse(file, text, sink):
            for sentence in sentences(file, text):
                sink.add(*sentence)
                if sink.full():
                    return

        return parse

    parsers = {
        "conll": parser(lambda file, text: _conll_sentences(file, text, need_tags)),
        "jsonl": parser(
            lambda file, text: _jsonl_sentences(file, text, need_tags, tokens_key, tags_key)
        ),
    }
    read_files(
        path,
        parsers,
        lambda file: file_format(file, format, EXTENSIONS, default="conll"),
        encoding,
        sink,
        what="sentences",
    )
    return sink.out


#: how `read` tells a file's format from its name (anything else is CoNLL).
EXTENSIONS = ((".jsonl", "jsonl"), (".json", "jsonl"))


class _Sentences:
    """Collects sentences into `TaggedExamples`, numbering documents."""

    def __init__(self, need_tags, tag_scheme, max_examples):
        self.out = TaggedExamples([], [] if need_tags else None, [])
        self.tag_scheme = tag_scheme
        self.max_examples = max_examples

    def __len__(self):
        return len(self.out)

    def full(self):
        return 0 < self.max_examples <= len(self.out)

    def add(self, tokens, tagged, lines, where, new_document):
        out = self.out
        # Parsers start every file with a new document.
        document = out.documents[-1] if out.documents else -1
        out.documents.append(document + 1 if new_document else document)
        out.tokens.append(tokens)
        out.sources.append(where)
        out.token_lines.append(lines)
        if out.tags is not None:
            out.tags.append(_convert(tagged, self.tag_scheme))


def read_spec(spec, need_tags=True):
    """Reads the split described by a `configs.InputConfig` (files or `tfds:<name>`)."""
    if spec.path.startswith("tfds:") or spec.format == "tfds":
        sink = _Sentences(need_tags, spec.tag_scheme, spec.max_examples)
        for sentence in _tfds_sentences(spec, need_tags):
            sink.add(*sentence)
            if sink.full():
                break
        return sink.out
    return read(
        spec.path,
        format=spec.format,
        encoding=spec.encoding,
        tag_scheme=spec.tag_scheme,
        tokens_key=spec.tokens_column,
        tags_key=spec.tags_column,
        need_tags=need_tags,
        max_examples=spec.max_examples,
    )


def _convert(tagged, scheme):
    try:
        return tag_schemes.to_iob2([t for t, _ in tagged], scheme)
    except tag_schemes.TagError as e:
        raise DataError(f"{tagged[e.index or 0][1]}: {e}") from e
