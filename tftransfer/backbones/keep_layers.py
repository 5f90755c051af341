"""A smaller backbone made of some of a pretrained backbone's transformer blocks.

`backbone.keep_layers` builds a shallower model from pretrained weights: a
count keeps the first blocks, a list keeps exactly those (every other block
is DistilBERT's initialisation, Sanh et al. 2019). The result is a backbone
of the same keras-hub class with `num_layers` set to what was kept, so the
tasks, packing, LoRA, checkpoints and the export see an ordinary backbone.

keras-hub cannot do this itself: `from_preset(num_layers=k)` loads the first
`k` blocks of a Hugging Face checkpoint but not a chosen set, and fails on a
keras-hub preset folder whose weights file holds all of them.

Example:

>>> from tftransfer import backbones
>>> backbone, _ = backbones.load("default")
>>> backbone.num_layers
6
>>> keep_layers(backbone, [0, 2, 4]).num_layers
3
"""

from tftransfer import config_checks


def layer_indices(keep, num_layers, key="backbone.keep_layers"):
    """The block indices `keep` names, checked against a `num_layers`-block backbone.

    Args:
        keep: a count of first blocks (int) or a list of block indices.
        num_layers: how many blocks the pretrained backbone has; None when
            not known yet (a config checked before loading): no upper bound.
        key: the config key named in errors.

    Returns:
        A list of distinct, increasing block indices.

    Raises:
        config_checks.ConfigError: `keep` is not a count in 1..num_layers or a
            non-empty increasing list of indices in 0..num_layers-1.
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, list, tuple)):
        raise config_checks.ConfigError(
            f"{key} must be a count of first blocks or a list of block indices, "
            f"got {config_checks.shown(keep)}"
        )
    if isinstance(keep, int):
        config_checks.check_range(key, keep, low=1, high=num_layers)
        return list(range(keep))
    indices = list(keep)
    if not indices or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise config_checks.ConfigError(
            f"{key} must list block indices, got {config_checks.shown(keep)}"
        )
    if any(i < 0 for i in indices):
        raise config_checks.ConfigError(f"{key}: block indices start at 0, got {indices}")
    if num_layers is not None and any(i >= num_layers for i in indices):
        raise config_checks.ConfigError(
            f"{key}: the backbone has blocks 0 to {num_layers - 1}, got {indices}"
        )
    if any(b <= a for a, b in zip(indices, indices[1:])):
        # A block's input is what the block before it learned to produce:
        # repeating or reordering blocks is not a pretrained model any more.
        raise config_checks.ConfigError(f"{key} must list distinct blocks in order, got {indices}")
    return indices


def keep_layers(backbone, keep, constructor_kwargs=None):
    """A copy of a keras-hub backbone with only the transformer blocks in `keep`.

    Args:
        backbone: a keras-hub backbone with `num_layers` and `transformer_layers`
            (BERT, GPT-2, Llama and their relatives).
        keep: a count of first blocks or a list of block indices.
        constructor_kwargs: constructor arguments the backbone's config leaves
            out (keras-hub 0.32's Llama drops `tie_word_embeddings`).

    Returns:
        `backbone` itself if every block is kept, else a new backbone of the
        same class whose embeddings, final norms and pooler are the original's
        and whose block `i` is the original's block `keep[i]`.
    """
    indices = layer_indices(keep, backbone.num_layers)
    if indices == list(range(backbone.num_layers)):
        return backbone
    config = {**backbone.get_config(), **(constructor_kwargs or {}), "num_layers": len(indices)}
    smaller = type(backbone).from_config(config)
    blocks = {id(layer) for layer in backbone.transformer_layers}
    others = {layer.name: layer for layer in backbone.layers if id(layer) not in blocks}
    kept_blocks = {id(layer) for layer in smaller.transformer_layers}
    for layer in smaller.layers:
        if id(layer) not in kept_blocks and layer.weights:
            layer.set_weights(others[layer.name].get_weights())
    for new, old in zip(smaller.transformer_layers, indices):
        new.set_weights(backbone.transformer_layers[old].get_weights())
    return smaller
