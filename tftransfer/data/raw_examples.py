"""Raw examples, column-wise, and the collector that checks each one's fields.

A parser hands the collector one example at a time as `get(column)` and its
`file:line`; the collector reads the text columns and the labels the task
wants (`LABEL_KINDS`), so every format shares one set of checks and one set
of messages.

Example:

>>> from tftransfer.data.data_config import InputConfig
>>> from tftransfer.data import raw_examples
>>> collector = raw_examples.ExampleCollector(InputConfig(), need_labels=True)
>>> collector.add({"text": "so good", "label": "positive"}.get, "f.csv:2")
>>> collector.out.texts, collector.out.labels, collector.out.sources
(['so good'], ['positive'], ['f.csv:2'])
"""

import dataclasses
from typing import List, Optional

from tftransfer.data.data_error import DataError
from tftransfer.data.label_values import LABEL_KINDS, finite_number, flag, label_name


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


class ExampleCollector:
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
        return label_name(label, column, where)

    def _multi(self, get, where):
        """A list of label names: a JSON list, a delimited string or 0/1 columns."""
        spec = self.spec
        if spec.label_columns:
            return [c for c in spec.label_columns if flag(get(c), c, where)]
        value = get(spec.label_column)
        if value is None:
            return []
        if isinstance(value, list):
            items = [label_name(v, spec.label_column, where) for v in value]
        elif isinstance(value, str) and spec.label_delimiter:
            items = value.split(spec.label_delimiter)
        else:
            items = [label_name(value, spec.label_column, where)] if str(value).strip() else []
        # Duplicates say nothing more; a trailing delimiter is not a label.
        return list(dict.fromkeys(i.strip() for i in items if i.strip()))

    def _floats(self, get, where):
        return [finite_number(get(c), c, where) for c in self.label_fields()]

    @staticmethod
    def _text(get, column, where):
        value = get(column)
        if not isinstance(value, str):
            raise DataError(f"{where}: field `{column}` must be text, got {value!r}")
        if not value.strip():
            raise DataError(f"{where}: field `{column}` is empty")
        return value
