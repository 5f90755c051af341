"""Reading a llama.cpp GGUF file: its metadata and its tensors as float32.

A thin layer over the `gguf` package that turns what a bad or unsupported
file raises into `ConversionError`s naming the file and the cause.
`gguf_converter` builds a Hugging Face-format folder from what these read.

Example:

>>> from tftransfer.backbones import gguf_reader
>>> gguf_reader.read("missing.gguf")
Traceback (most recent call last):
...
tftransfer.backbones.gguf_reader.ConversionError: missing.gguf: no such file
"""

import os

import numpy as np


class ConversionError(ValueError):
    """A GGUF file that cannot be converted; the message names file and cause."""


class GgufFile:
    """A read GGUF file and its path (the reader does not keep the path).

    Args:
        path: the file's path.
        reader: a `gguf.GGUFReader` of it.
    """

    def __init__(self, path, reader):
        self.path = path
        self.fields = reader.fields
        self.tensors = reader.tensors


def read(path):
    """Opens a GGUF file.

    Args:
        path: a `.gguf` file.

    Returns:
        A `GgufFile`.

    Raises:
        ConversionError: no such file, or not a readable GGUF file.
    """
    import gguf

    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    try:
        return GgufFile(path, gguf.GGUFReader(path))
    except Exception as e:  # noqa: BLE001 - numpy/struct errors of a bad file
        raise ConversionError(
            f"{path}: not a readable GGUF file (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from e


def field(reader, key, default=None):
    """A metadata value of a `GgufFile`; `default` if absent (None: absence is an error)."""
    found = reader.fields.get(key)
    if found is None:
        if default is None:
            raise ConversionError(f"{reader.path}: metadata key `{key}` is missing")
        return default
    return found.contents()


def architecture(reader):
    """The file's llama.cpp architecture name (`general.architecture`), e.g. `llama`."""
    return field(reader, "general.architecture")


def dequantize(path, tensor):
    """A GGUF tensor's values as a contiguous float32 array.

    Args:
        path: the file's path, for the error message.
        tensor: a `gguf.ReaderTensor` of any type the gguf package reads
            (F32, F16, BF16, Q8_0, Q4_0, Q4_1, the K-quants, ...).

    Raises:
        ConversionError: a tensor type the gguf package cannot dequantize.
    """
    import gguf

    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except (NotImplementedError, gguf.quants.QuantError, KeyError) as e:
        raise ConversionError(
            f"{path}: tensor `{tensor.name}` has type {tensor.tensor_type.name}, "
            f"which this gguf package cannot dequantize ({e})"
        ) from e
    return np.ascontiguousarray(values, dtype=np.float32)
