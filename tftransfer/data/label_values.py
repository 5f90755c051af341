"""Label fields as values: a label name, a 0/1 flag or a finite number.

Each check names the example's `file:line` and the field, so a bad label is
one line to fix. `check_not_joined` looks at a split's multi-labels as a
whole.

Example:

>>> from tftransfer.data import label_values
>>> label_values.flag("yes", "anger", "f.csv:2")
True
>>> label_values.finite_number(" 2.5", "score", "f.csv:2")
2.5
>>> label_values.finite_number("nan", "score", "f.csv:3")
Traceback (most recent call last):
...
tftransfer.data.data_error.DataError: f.csv:3: field `score` must be a finite number, got 'nan'
"""

import math

from tftransfer.data.data_error import DataError

#: what `readers.read(labels=...)` makes of each example's label fields.
LABEL_KINDS = ("single", "multi", "float")
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no", ""}


def label_name(value, column, where):
    """A label name or integer id, as a stripped string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(
            f"{where}: field `{column}` must be a label name or an integer id, got {value!r}"
        )
    return str(value).strip()


def flag(value, column, where):
    """A 0/1 label column's value as a bool."""
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(
        f"{where}: field `{column}` must be 0 or 1 (label absent/present), got {value!r}"
    )


def finite_number(value, column, where):
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


def check_not_joined(spec, labels):
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
