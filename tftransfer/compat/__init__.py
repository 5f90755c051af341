"""Every use of a library's private internals, checked, in one place.

tftransfer needs a few things that keras, keras-hub and TensorFlow have but do
not publish: BERT's embedding and transformer layers one by one (sequence
packing), the feed-forward activation of keras-hub's BERT layers (exact
GELU), Keras' Adam slots and its optimizer's hooks (the fused update, the
per-layer weight decay, the trainer's own cross-replica gradient sum),
TensorFlow's merge call, the word-splitting patterns of keras-hub's
WordPiece tokenizer, the merges of its byte-level BPE tokenizer, the
key/value cache of keras-hub's causal LMs and how their layers take it
(cached decoding), the sublayers of its Llama layers (the fast Llama
forward), and the names of its blocks and projections (layer-wise
strategies, LoRA). Each is reached through a function here, one module per
library (`keras_internals`, `keras_hub_internals`, `keras_hub_tokenizers`,
`tf_internals`), so an upgrade that moves one fails at once with the name of
what is missing instead of training a wrong model.

`check()` (`checks.py`) probes every one on tiny models, for presence and for
the behaviour tftransfer relies on: the keyword arguments it passes, the
values it unpacks, the overridden methods being called, the variable paths
it reads blocks from, and the fast Llama forward against keras-hub's layers.
The tests call it, so a version bump shows all its breakages together.

Example:

>>> from tftransfer import compat
>>> compat.check()  # raises CompatError naming each broken internal
>>> compat.versions()["keras-hub"]
'0.32.0'
"""

from tftransfer.compat.base import TESTED, CompatError, versions  # noqa: F401
from tftransfer.compat.checks import check  # noqa: F401
from tftransfer.compat.keras_hub_internals import (  # noqa: F401
    BERT_LAYERS,
    DECODER_CACHE_KEYWORDS,
    GATE_PROJECTIONS,
    PROJECTIONS,
    adaptable_layers,
    bert_layer_parts,
    bert_layers,
    block_of_path,
    build_decoder_cache,
    decoder_layer_with_cache,
    exact_gelu,
    is_embedding_path,
    llama_layer_parts,
    llama_norm_weights,
    llama_style_parts,
    set_exact_gelu,
    transformer_blocks,
)
from tftransfer.compat.keras_hub_tokenizers import (  # noqa: F401
    byte_pair_ids,
    wordpiece_split_patterns,
)
from tftransfer.compat.keras_internals import (  # noqa: F401
    KERAS_ALL_REDUCE,
    KERAS_WEIGHT_DECAY,
    LORA_WEIGHTS,
    adam_slots,
    check_optimizer_hooks,
    distribution_strategy,
    flatten_layers,
    merge_lora,
    optimizer_variables,
    uses_weight_decay,
    variable_index,
)
from tftransfer.compat.tf_internals import maybe_merge_call, onednn_enabled  # noqa: F401
