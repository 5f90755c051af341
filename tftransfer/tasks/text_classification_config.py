"""The configs of the tasks on whole texts: the shared text block and text classification's.

`TextInputConfig` is how a text-level task reads its texts (pooling, pairs,
long texts as windows); text classification, multi-label classification and
text regression each add their output fields to it.

Example:

>>> from tftransfer.tasks.text_classification_config import TextClassificationConfig
>>> cfg = TextClassificationConfig(labels=["negative", "positive"], max_seq_length=64)
>>> cfg.pooling, cfg.long_texts
('auto', 'truncate')
"""

import dataclasses
from typing import List, Optional

from tftransfer import config_checks
from tftransfer.config_checks import bounded, one_of, text
from tftransfer.models import heads, windowed_classifier
from tftransfer.tasks import base
from tftransfer.text import text_windows

#: `auto` resolves to one of `heads.pool`'s poolings for the backbone.
POOLING = ("auto", *heads.POOLINGS)
LONG_TEXTS = ("truncate", "windows")


@dataclasses.dataclass
class TextInputConfig(base.TaskConfig):
    """How a text-level task reads its texts; shared by every task on whole texts.

    Text classification, multi-label classification and text regression
    differ in their outputs only; each config is this block plus its own
    output fields.

    Attributes:
        max_seq_length: tokens per example, special tokens included.
        pooling: `pooled` (BERT's pooler over [CLS]), `cls` (the [CLS]
            vector), `mean` (masked mean, as sentence-transformers train),
            `last` (the last real token: the only one a decoder's causal
            attention lets see the whole text; right or left padding), or
            `auto`: `pooled` on backbones with a pooler, `last` on decoders,
            else `cls`.
        dropout: dropout before the output layer.
        text_pair: examples are sentence pairs; None = as the training data
            (a `text_pair_column` makes it a pair task), saved with the model.
        long_texts: what happens to texts longer than max_seq_length:
            `truncate` (keep `truncation`'s part) or `windows` (score
            overlapping windows and aggregate them per text, in training,
            evaluation and the export).
        truncation: the part a truncated text keeps: `head`, `tail` or
            `head_tail` (a quarter from the head, the rest from the tail).
        window_stride: tokens between window starts; 0 = half a window.
        max_windows: windows per text at most (memory: a batch holds
            batch_size x max_windows rows); tokens after them are dropped.
        window_aggregation: how window logits become the text's: `mean`,
            `max`, or `attention` (a learned softmax weight per window).
    """

    max_seq_length: int = bounded(128, low=2, high=base.MAX_SEQ_LENGTH)
    pooling: str = one_of("auto", POOLING)
    dropout: float = bounded(0.1, low=0.0, below=1.0)
    text_pair: Optional[bool] = None
    long_texts: str = one_of("truncate", LONG_TEXTS)
    truncation: str = one_of("head", text_windows.TRUNCATION)
    window_stride: int = bounded(0, low=0)
    max_windows: int = bounded(8, low=1, high=4096)
    window_aggregation: str = one_of("mean", windowed_classifier.AGGREGATION)

    def check(self, key):
        super().check(key)
        # A pair's second text takes at most half the sequence, so a window
        # of the first text is at least this wide.
        narrowest = self.max_seq_length - 3 - (self.max_seq_length - 3) // 2
        config_checks.check_range(f"{key}.window_stride", self.window_stride, low=0, high=narrowest)


@dataclasses.dataclass
class TextClassificationConfig(TextInputConfig):
    """Text classification (single sentence or sentence pair).

    The text fields are `TextInputConfig`'s (shared with multi-label
    classification and text regression); the label fields are its own.

    Attributes:
        labels: the label names in id order; empty = discovered from the
            training data (sorted) and saved with the model.
        class_weights: one weight per label, applied to the loss.
        balanced_class_weights: weight each class by n / (k * count) from
            the training data instead of giving `class_weights`.
    """

    labels: List[str] = text(default_factory=list)
    class_weights: List[float] = bounded(default_factory=list, low=0.0)
    balanced_class_weights: bool = False
