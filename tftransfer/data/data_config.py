"""The `data` block of an experiment config: the splits and the input pipeline.

`configs.DataConfig` and `configs.InputConfig` are these classes.

Example:

>>> from tftransfer.data.data_config import DataConfig
>>> DataConfig().bucket_boundaries[:3]
[16, 32, 48]
"""

import dataclasses
from typing import List, Optional

from official.modeling.hyperparams import base_config

from tftransfer.config_checks import ConfigError, bounded, codec, one_of, text

#: `data.<split>.format` values; empty = from the path.
FORMATS = ("", "csv", "tsv", "jsonl", "text", "tfds", "conll", "squad")


@dataclasses.dataclass
class InputConfig(base_config.Config):
    """One split of the data.

    Attributes:
        path: a file, a glob, several of them separated by commas, or
            `tfds:<name>[/<config>]` for a TensorFlow Datasets dataset
            (downloaded and prepared on first use, as `tfds.load` does).
        format: `csv`, `tsv`, `jsonl`, `tfds`, `conll` (token
            classification) or `squad` (question answering); empty means
            "from the path" (token classification: `jsonl` for .jsonl/.json
            files, else `conll`; question answering: `jsonl` for .jsonl
            files, else `squad`).
        split: the TFDS split to read, e.g. `validation` or `train+dev`
            (TFDS only).
        tfds_data_dir: where the TFDS dataset is prepared (TFDS only;
            default TFDS's own, `~/tensorflow_datasets`).
        text_column: column (or JSON key / TFDS feature) with the text.
        text_pair_column: column with the second text of a pair task, if any.
        label_column: column with the label (a name or an integer id); for
            multi-label tasks a JSON list of them or a string of them joined
            by `label_delimiter`; for regression a number.
        label_delimiter: what separates the labels of a multi-label CSV/TSV
            column (e.g. `,`); empty = one label per field.
        label_columns: one column per label instead of `label_column`:
            0/1 values (multi-label; the column names are the labels) or one
            number per target (regression).
        tokens_column, tags_column: JSONL keys (TFDS features) of the token
            and tag lists (token classification).
        tag_scheme: `auto`, `iob1`, `iob2` or `bioes`; tags are converted
            to IOB2 (token classification).
        has_header: whether CSV/TSV files start with a header line.
        column_names: names for the columns of header-less CSV/TSV files.
        quoting: `minimal` (CSV-style quotes) or `none` (quotes are text,
            as GLUE TSVs need).
        encoding: text encoding of the files.
        max_examples: read at most this many examples (0 = all).
    """

    path: str = text("")
    format: str = one_of("", FORMATS)
    split: str = text("train")
    tfds_data_dir: str = text("")
    text_column: str = text("text")
    text_pair_column: str = text("")
    label_column: str = text("label")
    label_delimiter: str = text("")
    label_columns: List[str] = text(default_factory=list)
    tokens_column: str = text("tokens")
    tags_column: str = text("tags")
    tag_scheme: str = one_of("auto", ("auto", "iob1", "iob2", "bioes"))
    has_header: bool = True
    column_names: List[str] = text(default_factory=list)
    quoting: str = one_of("minimal", ("minimal", "none"))
    encoding: str = text("utf-8", check=codec)
    max_examples: int = bounded(0, low=0)


def _increasing(key, values):
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"{key} must be increasing lengths, got {values}")


@dataclasses.dataclass
class DataConfig(base_config.Config):
    """Data splits and the input pipeline.

    Attributes:
        train, validation, test: the splits; an empty `path` means "none".
        unlabeled: texts without labels for `transfer.strategy: distill`:
            the teacher labels them and the student trains on them along
            with `train` (its labels, if any, are not read).
        shuffle_buffer_size: examples held by the training shuffle buffer.
        bucket_boundaries: batches group examples of similar length and are
            padded to the smallest of these lengths (or the task's
            max_seq_length) that holds them all. A small fixed set keeps
            compiled steps to one shape per bucket (XLA, TPUs). Empty = no
            bucketing: every batch padded to max_seq_length.
        packing: training batches pack their examples into shared rows of
            max_seq_length: less padding for short texts, same accuracy.
            Batches keep `batch_size` examples; evaluation packs too in
            runs that pack (same outputs as unpacked).
            Unset (default) = packed wherever it can run: text
            classification without windows or token classification without
            casing features, a BERT-style backbone, one replica, not a TPU.
            `true` = packed or an error; `false` = off.
        cache: keep tokenized examples in memory (tokenize once).
        prefetch: batches to prefetch. A fixed small number: AUTOTUNE was
            seen to stall for many seconds at epoch starts on 2-core machines.
        num_parallel_calls: parallel tokenization calls (0 = AUTOTUNE).
    """

    train: InputConfig = dataclasses.field(default_factory=InputConfig)
    validation: InputConfig = dataclasses.field(default_factory=InputConfig)
    test: InputConfig = dataclasses.field(default_factory=InputConfig)
    unlabeled: InputConfig = dataclasses.field(default_factory=InputConfig)
    shuffle_buffer_size: int = bounded(100_000, low=0)
    bucket_boundaries: List[int] = bounded(
        default_factory=lambda: [16, 32, 48, 64, 96, 128, 192, 256, 384],
        low=1,
        check=_increasing,
    )
    packing: Optional[bool] = None
    cache: bool = True
    prefetch: int = bounded(2, low=0, high=1024)
    num_parallel_calls: int = bounded(2, low=0, high=1024)

    def check(self, key):
        """Raises `ConfigError` for values that are wrong together (`key`: `data`)."""
        for name in ("train", "validation", "test", "unlabeled"):
            split = getattr(self, name)
            is_tfds = split.path.startswith("tfds:") or split.format == "tfds"
            if split.path and not is_tfds and "+" in split.split:
                # Files ignore `split`; one that combines TFDS splits shows the
                # config meant more data than the files hold.
                raise ConfigError(
                    f"{key}.{name}: split `{split.split}` combines TFDS splits, but path "
                    f"`{split.path}` is files: list every file in path (comma-separated)"
                )
            if split.has_header and split.column_names:
                raise ConfigError(
                    f"{key}.{name}: column_names is set but has_header is true; for files "
                    "without a header line set has_header: false, or drop column_names to "
                    "use the header's names"
                )
