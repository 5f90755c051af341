"""Read extractive question-answering data: SQuAD JSON (v1.1, v2.0) or JSONL.

SQuAD JSON: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}`;
v2.0 marks unanswerable questions with `is_impossible: true` (and no
answers). JSONL: one object per line with `id`, `question`, `context`,
`answer_text` and `answer_start` (empty `answer_text` = unanswerable), or
Hugging Face's layout, `answers: {"text": [...], "answer_start": [...]}`
(as `tfds:squad/v1.1` gives it too), and an optional `title`.

An answer whose `answer_start` does not point at its text in the context is
never used silently: if the text occurs elsewhere in the context, the nearest
occurrence is used; otherwise the answer is dropped. Both cases are listed by
question id in `QAExamples.problems`, which training prints.

Example:

>>> from tftransfer.data import squad_readers
>>> examples = squad_readers.read("data/squad_sample/dev.json")
>>> len(examples), examples.version
(308, '1.1')
"""

import dataclasses
import json
from typing import List, Tuple

from tftransfer.data import tfds_records
from tftransfer.data.data_error import DataError
from tftransfer.data.input_files import file_format, read_files
from tftransfer.data.json_lines import jsonl_records


@dataclasses.dataclass
class AnswerProblems:
    """Answers whose `answer_start` did not match the context.

    Attributes:
        repaired: `(id, given start, used start)` for answers whose text was
            found elsewhere in the context (the nearest occurrence is used).
        dropped: `(id, given start, text)` for answers whose text is not in
            the context at all.
    """

    repaired: List[Tuple[str, int, int]] = dataclasses.field(default_factory=list)
    dropped: List[Tuple[str, int, str]] = dataclasses.field(default_factory=list)

    def __bool__(self):
        return bool(self.repaired or self.dropped)

    def summary(self, first=5):
        """One line per kind of problem: the count and the first few ids."""
        lines = []
        if self.repaired:
            ids = ", ".join(f"{i} ({a}->{b})" for i, a, b in self.repaired[:first])
            lines.append(
                f"{len(self.repaired)} answer(s) had an answer_start that does not match "
                f"their text; used the nearest occurrence: {ids}"
            )
        if self.dropped:
            ids = ", ".join(f"{i} ({t!r} at {a})" for i, a, t in self.dropped[:first])
            lines.append(
                f"{len(self.dropped)} answer(s) have a text that is not in their context; "
                f"dropped: {ids}"
            )
        return "\n".join(lines)


@dataclasses.dataclass
class QAExamples:
    """Questions with their contexts and gold answers.

    Attributes:
        ids: question ids (unique).
        questions, contexts: the texts.
        answers: per question, the gold `(text, character start)` pairs
            (several in SQuAD dev; empty for unanswerable questions).
        is_impossible: whether the question has no answer (SQuAD v2.0).
        titles: the article each question belongs to.
        sources: where each question is (`file:line` or `file: data[i]...`).
        problems: answers whose `answer_start` did not match.
        version: `1.1` or `2.0` (any unanswerable question makes it 2.0).
    """

    ids: List[str] = dataclasses.field(default_factory=list)
    questions: List[str] = dataclasses.field(default_factory=list)
    contexts: List[str] = dataclasses.field(default_factory=list)
    answers: List[List[Tuple[str, int]]] = dataclasses.field(default_factory=list)
    is_impossible: List[bool] = dataclasses.field(default_factory=list)
    titles: List[str] = dataclasses.field(default_factory=list)
    sources: List[str] = dataclasses.field(default_factory=list)
    problems: AnswerProblems = dataclasses.field(default_factory=AnswerProblems)
    version: str = "1.1"

    def __len__(self):
        return len(self.ids)


def locate_answer(context, text, start):
    """Returns the start of `text` in `context` nearest to `start`, or None."""
    if context[start : start + len(text)] == text:
        return start
    found, position = [], context.find(text)
    while position >= 0 and text:
        found.append(position)
        position = context.find(text, position + 1)
    return min(found, key=lambda p: (abs(p - start), p)) if found else None


class _Builder:
    def __init__(self, need_answers, max_examples):
        self.out = QAExamples()
        self.need_answers = need_answers
        self.max_examples = max_examples
        self.seen = {}

    def __len__(self):
        return len(self.out)

    def full(self):
        return 0 < self.max_examples <= len(self.out)

    def add(self, where, qid, question, context, answers, impossible, title):
        for name, value in (("id", qid), ("question", question), ("context", context)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: field `{name}` must be a non-empty string")
        if qid in self.seen:
            raise DataError(f"{where}: question id `{qid}` was already used at {self.seen[qid]}")
        self.seen[qid] = where
        kept = []
        for text, start in answers:
            used = locate_answer(context, text, start)
            if used is None:
                self.out.problems.dropped.append((qid, start, text))
            else:
                if used != start:
                    self.out.problems.repaired.append((qid, start, used))
                kept.append((text, used))
        if impossible:
            self.out.version = "2.0"
        elif self.need_answers and not kept and not answers:
            raise DataError(
                f"{where}: question `{qid}` has no answers and is not marked is_impossible"
            )
        out = self.out
        out.ids.append(qid)
        out.questions.append(question)
        out.contexts.append(context)
        out.answers.append(kept)
        out.is_impossible.append(bool(impossible))
        out.titles.append(title)
        out.sources.append(where)


def _answers(where, raw):
    if not isinstance(raw, list):
        raise DataError(f"{where}: `answers` must be a list")
    out = []
    for k, answer in enumerate(raw):
        text, start = (answer or {}).get("text"), (answer or {}).get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
            raise DataError(
                f"{where}.answers[{k}]: needs `text` (string) and `answer_start` (integer)"
            )
        out.append((text, start))
    return out


def _read_squad_json(path, text, builder):
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a SQuAD object with a `data` list")
    for i, article in enumerate(data):
        title = str(article.get("title", f"article {i}"))
        for j, paragraph in enumerate(article.get("paragraphs", [])):
            context = paragraph.get("context")
            for k, qa in enumerate(paragraph.get("qas", [])):
                where = f"{path}: data[{i}].paragraphs[{j}].qas[{k}]"
                builder.add(
                    where,
                    qa.get("id"),
                    qa.get("question"),
                    context,
                    _answers(where, qa.get("answers", [])),
                    qa.get("is_impossible", False),
                    title,
                )
                if builder.full():
                    return


def _columns_answers(where, raw):
    """Hugging Face / TFDS answers, `{"text": [...], "answer_start": [...]}`, as pairs."""
    texts, starts = raw.get("text", []), raw.get("answer_start", [])
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise DataError(
            f"{where}: `answers` needs `text` and `answer_start` lists of the same length"
        )
    return _answers(where, [{"text": t, "answer_start": a} for t, a in zip(texts, starts)])


def _add_record(where, record, builder):
    """One flat record: the JSONL layout or the Hugging Face/TFDS one (`answers` of lists)."""
    if isinstance(record.get("answers"), dict):
        answers = _columns_answers(where, record["answers"])
        impossible = bool(record.get("is_impossible", not answers))
    else:
        answer = record.get("answer_text", "")
        start = record.get("answer_start", -1)
        if not isinstance(answer, str):
            raise DataError(f"{where}: field `answer_text` must be a string")
        if answer and (not isinstance(start, int) or isinstance(start, bool)):
            raise DataError(f"{where}: field `answer_start` must be an integer")
        answers, impossible = ([(answer, start)] if answer else []), not answer
    builder.add(
        where,
        record.get("id"),
        record.get("question"),
        record.get("context"),
        answers,
        impossible,
        str(record.get("title", "")),
    )


def _read_jsonl(path, text, builder):
    for where, record in jsonl_records(path, text):
        _add_record(where, record, builder)
        if builder.full():
            return


def read_spec(spec, need_answers=True):
    """Reads the split a `configs.InputConfig` describes: files or `tfds:squad/v1.1` and kin."""
    if not (spec.path.startswith("tfds:") or spec.format == "tfds"):
        return read(spec.path, spec.format, spec.encoding, need_answers, spec.max_examples)
    builder = _Builder(need_answers, spec.max_examples)
    for where, record in tfds_records.records(spec):
        _add_record(where, record, builder)
        if builder.full():
            break
    return builder.out


def read(path, format="", encoding="utf-8", need_answers=True, max_examples=0):
    """Reads QA examples from SQuAD JSON or JSONL files.

    Args:
        path: a file, a glob, or several separated by commas.
        format: `squad` or `jsonl`; empty = `jsonl` for `.jsonl`, else
            `squad`.
        encoding: text encoding.
        need_answers: every question must have answers or be marked
            unanswerable.
        max_examples: read at most this many questions (0 = all).

    Returns:
        `QAExamples` in file order.

    Raises:
        DataError: the message names the file and the line (JSONL), the
            line and column (invalid JSON), or the path inside the JSON.
    """
    builder = _Builder(need_answers, max_examples)
    read_files(
        path,
        {"squad": _read_squad_json, "jsonl": _read_jsonl},
        lambda file: file_format(file, format, ((".jsonl", "jsonl"),), default="squad"),
        encoding,
        builder,
        what="questions",
    )
    return builder.out


def split_by_article(document, every=4, offset=3):
    """Splits a parsed SQuAD JSON document by article, deterministically.

    Splitting by article keeps every paragraph (and its many questions) on one
    side, so no context is seen in both. Article `i` (in file order) goes to
    the second document when `i % every == offset`, else to the first.

    Example:
    >>> doc = {"version": "1.1", "data": [{"title": str(i)} for i in range(8)]}
    >>> train, evaluation = split_by_article(doc)
    >>> [a["title"] for a in evaluation["data"]]
    ['3', '7']

    Returns:
        (train document, evaluation document), both with the input's `version`.
    """
    train, evaluation = [], []
    for i, article in enumerate(document["data"]):
        (evaluation if i % every == offset else train).append(article)
    version = document.get("version", "1.1")
    return {"version": version, "data": train}, {"version": version, "data": evaluation}
