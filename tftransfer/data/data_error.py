"""The error every data reader raises for bad input.

The CLI shows it as one line, without a traceback: the message itself says
what to fix, naming the file, the line and the field.

Example:

>>> from tftransfer.data.data_error import DataError
>>> issubclass(DataError, ValueError)
True
"""


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the field."""
