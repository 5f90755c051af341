"""`Backbone`: a keras-hub backbone as every task sees it.

Encoders and decoders look the same from outside (named int32 inputs, a
`sequence_output`); what only some can do is asked here (`supports_packing`,
`causal_lm`). Decoders are told apart by the causal LM classes keras-hub
pairs with their backbone classes. The package docstring's example shows
one in use.
"""

import keras
import keras_hub

from tftransfer import compat
from tftransfer.backbones.lean_bert import LeanBert
from tftransfer.backbones.specs import BackboneError
from tftransfer.models import serving_weights


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _causal_lm_classes():
    # keras-hub pairs every causal LM with its backbone class, so the
    # decoder families are read from the library, not listed here.
    found = {}
    for cls in _subclasses(keras_hub.models.CausalLM):
        if getattr(cls, "backbone_cls", None) is not None:
            found.setdefault(cls.backbone_cls, cls)
    return found


def _decoder_classes():
    return tuple(_causal_lm_classes())


class Backbone:
    """A keras-hub backbone as every task sees it.

    Tasks build their heads on `outputs(self.inputs())` and never look
    inside the keras-hub model: encoders (BERT family: token, segment and
    padding inputs; a sequence output and BERT's pooled output) and decoders
    (GPT-2/Llama family: token and padding inputs, one sequence output) look
    the same from outside. What only some backbones can do is asked here
    (`supports_packing`), not found by searching a model's layers.

    Args:
        model: a `keras_hub.models.Backbone` (a functional model with dict
            inputs).

    The package docstring's example shows one in use.
    """

    def __init__(self, model):
        if not isinstance(model.input, dict):
            raise BackboneError(f"{type(model).__name__}: expected a backbone with named inputs")
        self.model = model
        self.feature_names = tuple(model.input)
        self.family = "decoder" if isinstance(model, _decoder_classes()) else "encoder"

    @classmethod
    def wrap(cls, model):
        """A `Backbone` for a keras-hub backbone (a `Backbone` is returned as is)."""
        return model if isinstance(model, Backbone) else cls(model)

    def inputs(self):
        """`{feature name: keras.Input}`: int32 `[batch, length]` each."""
        return {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in self.feature_names
        }

    def outputs(self, inputs, training=None):
        """`{"sequence_output": [batch, length, hidden], "pooled_output"?: [batch, hidden]}`.

        `pooled_output` is there for backbones that have a pooler (BERT).
        """
        outputs = self.model({k: inputs[k] for k in self.feature_names}, training=training)
        if not isinstance(outputs, dict):
            outputs = {"sequence_output": outputs}
        return outputs

    @property
    def has_pooler(self):
        """Whether `outputs` has a `pooled_output` (BERT's pooler)."""
        return isinstance(self.model.output, dict) and "pooled_output" in self.model.output

    @property
    def context_length(self):
        """The longest sequence the backbone takes (None: no fixed limit, e.g. rotary)."""
        return getattr(self.model, "max_sequence_length", None)

    def causal_lm(self):
        """keras-hub's CausalLM on this (decoder) backbone: token logits, cached decoding.

        The class is the one keras-hub pairs with the backbone's own class
        (`Llama3CausalLM` for `Llama3Backbone`, not its parent's).
        """
        pairs = _causal_lm_classes()
        for cls in type(self.model).__mro__:
            if cls in pairs:
                return pairs[cls](backbone=self.model, preprocessor=None)
        raise BackboneError(
            f"{type(self.model).__name__} is not a decoder: a causal LM needs a "
            "GPT-style backbone (e.g. `smollm2`, a GPT-2/Llama/Mistral preset or folder)"
        )

    # -- packing: several examples per row ----------------------------------
    @property
    def supports_packing(self):
        """Whether `packed_sequence_output` works (BERT-style encoders)."""
        return isinstance(self.model, keras_hub.models.BertBackbone)

    @property
    def lean_blocks(self):
        """Whether `packed_sequence_output` runs the blocks through `LeanBert` (fused ops).

        Then even rows that share nothing (`packing.one_per_row`) run faster
        through it than through the keras-hub model (BENCHMARKS.md).
        """
        return self.supports_packing and LeanBert.supports(self.model)

    def packed_sequence_output(self, features, training=False, outputs_at=None):
        """Sequence output for packed rows (`data.packing` features).

        keras-hub's BertBackbone takes a padding mask but no attention mask
        or positions, so this calls its own layers (the same weights) with an
        attention mask that keeps each example to itself and positions that
        restart per example. The blocks run through `LeanBert` (fused
        projections and GELU; `backbone.fast_forward: off` keeps keras-hub's).

        Args:
            features: packed features (`packing.pack`).
            training: whether dropout applies.
            outputs_at: int `[n]` positions in the flattened rows whose
                outputs alone are read (e.g. `example_starts`); the output is
                then `[n, hidden]`, and the last block (through `LeanBert`)
                computes only what those positions need.
        """
        if not self.supports_packing:
            raise BackboneError(
                f"packing needs a BERT-style backbone; got {type(self.model).__name__}"
            )
        b = compat.bert_layers(self.model)
        example_ids = features["example_ids"]
        lean = self.lean_blocks
        layer = b["token_embedding"]
        if lean and not training:  # training keeps keras-hub's layer
            tokens = serving_weights.embedded(layer, features["token_ids"], layer.compute_dtype)
        else:
            tokens = layer(features["token_ids"])
        positions = b["position_embedding"](tokens, positions=features["position_ids"])
        segments = b["segment_embedding"](features["segment_ids"])
        x = b["embeddings_add"]((tokens, positions, segments))
        x = b["embeddings_layer_norm"](x)
        x = b["embeddings_dropout"](x, training=training)
        # Padding tokens (-1) see nothing; their outputs are never read.
        mask = keras.ops.logical_and(
            keras.ops.equal(example_ids[:, :, None], example_ids[:, None, :]),
            (example_ids >= 0)[:, None, :],
        )
        layers = b["transformer_layers"]
        for i, layer in enumerate(layers):
            if lean:
                last = outputs_at if i == len(layers) - 1 else None
                x = LeanBert.encoder_layer(layer, x, mask, training=training, outputs_at=last)
            else:
                x = layer(x, attention_mask=mask, training=training)
        if outputs_at is None or (lean and layers):
            return x
        return keras.ops.take(keras.ops.reshape(x, [-1, x.shape[-1]]), outputs_at, axis=0)

    def pool(self, first_token):
        """BERT's pooler on `[batch, hidden]` first-token vectors."""
        return compat.bert_layers(self.model)["pooled_dense"](first_token)
