"""The question answering span finder run on packed rows (see `data/packing.py`).

QA exports and QA training take their windows (`[CLS] question [SEP]
context piece [SEP]`) in the packed layout, a row per window
(`packing.one_per_row`): the backbone then runs through `LeanBert`'s fused
blocks, not keras-hub's. Windows do not share rows: they are up to 384 wide,
and shared rows cost more attention than the padding they save
(BENCHMARKS.md). The span finder's own head scores every token, and
`packing.unpack` puts each window's scores back in its own row, with padding
scored as the unpacked model scores it (never a start or an end). It shares
the unpacked model's weights.

Example:

>>> import numpy as np
>>> import tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.data import packing
>>> from tftransfer.models.packed_span_finder import PackedSpanFinder
>>> from tftransfer.tasks.question_answering import QuestionAnswering, QuestionAnsweringConfig
>>> backbone, tokenizer = backbones.load("default")
>>> cfg = QuestionAnsweringConfig(max_seq_length=32, max_query_length=8, doc_stride=8)
>>> model = QuestionAnswering(cfg, tokenizer).build_model(backbone)
>>> features = {
...     "token_ids": tf.constant([[101, 2040, 102, 3960, 2253, 102], [101, 2073, 102, 0, 0, 0]]),
...     "segment_ids": tf.constant([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]]),
...     "padding_mask": tf.constant([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]),
... }
>>> mask = features["padding_mask"].numpy().astype(bool)
>>> packed = PackedSpanFinder(backbone, model)(packing.one_per_row(features))
>>> np.allclose(packed.numpy()[mask], model(features).numpy()[mask], atol=1e-5)
True
"""

import keras

from tftransfer.data import packing
from tftransfer.models.packed_head_model import PackedHeadModel

#: what padding scores, as in the unpacked span finder: never a start or an end.
PADDING_SCORE = -1e4


class PackedSpanFinder(PackedHeadModel):
    """Shares `backbone` and the head of `model`; takes packed features.

    Args:
        backbone: a `backbones.Backbone` that `supports_packing`.
        model: the unpacked span finder built on `backbone`
            (`QuestionAnswering.build_model`: layers `head_dropout` and
            `span_logits`).
        one_per_row: takes the unpacked features (`[windows, length]`) and
            lays them out itself, a row per window (training's batches).

    Returns (when called):
        `[windows, length, 2]` start and end logits in the unpacked layout.
    """

    def __init__(self, backbone, model, one_per_row=False, **kwargs):
        super().__init__(backbone, model, logits_layer="span_logits", **kwargs)
        self.one_per_row = one_per_row

    def call(self, features, training=False):
        if self.one_per_row:
            features = packing.one_per_row(features)
        x = self.backbone.packed_sequence_output(features, training=training)
        logits = self.head_logits(self.head_dropout(x, training=training))
        real = packing.unpack(keras.ops.ones_like(logits[..., :1]), features)
        return packing.unpack(logits, features) + (1.0 - real) * PADDING_SCORE
