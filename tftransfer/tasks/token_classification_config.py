"""The config of token classification (named-entity recognition).

Example:

>>> from tftransfer.tasks.token_classification_config import TokenClassificationConfig
>>> TokenClassificationConfig(labels=["O", "B-PER", "I-PER"]).decoding
'constrained'
"""

import dataclasses
from typing import List, Optional

from tftransfer import config_checks
from tftransfer.config_checks import bounded, one_of, text
from tftransfer.tasks import base

DECODING = ("constrained", "argmax")


@dataclasses.dataclass
class TokenClassificationConfig(base.TaskConfig):
    """Token classification (named-entity recognition) on IOB2 tags.

    Attributes:
        labels: the IOB2 tags in id order (`O` first); empty = `O` plus
            `B-`/`I-` of every entity type in the training data, saved with
            the model.
        max_seq_length: tokens per window, special tokens included. Longer
            sentences are split into overlapping windows.
        window_stride: subwords between the starts of consecutive windows;
            0 = half a window. Each word is predicted once, from the window
            where it has the most context.
        label_all_subwords: train on every subword (continuations of a
            `B-X`/`I-X` word get `I-X`) instead of the first subword only.
            Predictions always come from the first subword.
        casing_features: feed each word's casing class (lower, Capitalised,
            ALL CAPS, mixed, number, other) to the tagging layer through a
            small embedding (uncased backbones cannot see case otherwise);
            None = when the tokenizer lowercases. Off by default: on
            CoNLL-2003 with MiniLM it did not help (BENCHMARKS.md).
        document_context: window whole documents instead of single
            sentences, so each word is tagged with the neighbouring
            sentences in view (BERT's "maximal document context" for
            CoNLL-2003). Documents are the sentences between `-DOCSTART-`
            lines (and each file); JSONL records stay on their own. Metrics
            and predictions are still per sentence.
        dropout: dropout before the tagging layer.
        strict: read entities as strict IOB2 (an `I-X` that does not follow
            `B-X`/`I-X` is not an entity) in evaluation and serving; the
            default is conlleval's reading.
        decoding: `constrained` (the most probable tag sequence in which
            every `I-X` follows `B-X` or `I-X`; strict and conlleval readings
            then agree) or `argmax` (each word's most probable tag).
    """

    labels: List[str] = text(default_factory=list)
    max_seq_length: int = bounded(128, low=3, high=base.MAX_SEQ_LENGTH)
    window_stride: int = bounded(0, low=0)
    label_all_subwords: bool = False
    casing_features: Optional[bool] = False
    document_context: bool = False
    dropout: float = bounded(0.1, low=0.0, below=1.0)
    strict: bool = False
    decoding: str = one_of("constrained", DECODING)

    def check(self, key):
        super().check(key)
        window = self.max_seq_length - 2
        if window < 1 or not 0 <= self.window_stride <= window:
            raise config_checks.ConfigError(
                f"{key}: need max_seq_length >= 3 and 0 <= window_stride <= "
                f"max_seq_length - 2, got {self.max_seq_length} and {self.window_stride}"
            )
