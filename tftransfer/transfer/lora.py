"""`lora`: low-rank adapters on the backbone's projections (Hu et al., 2021)."""

from absl import logging

from tftransfer import compat
from tftransfer.config_checks import ConfigError
from tftransfer.transfer import transfer_config, transfer_strategy


def _adapted(model):
    return [
        layer for layer in compat.flatten_layers(model) if getattr(layer, "lora_enabled", False)
    ]


def _check_targets(targets, model):
    """Fails unless each target names a layer of every transformer block of `model`.

    A keras-hub upgrade that renamed a projection would otherwise leave it
    without adapters, silently. Only the default list, written for several
    families, may name what a backbone's blocks all lack (BERT has no gate);
    that keras-hub's blocks still have its names is `compat.check()`'s to see.
    """
    default = tuple(targets) == tuple(transfer_config.LORA_TARGETS)
    blocks = [
        (block, compat.adaptable_layers(block)) for _, block in compat.transformer_blocks(model)
    ]
    absent = []
    for target in dict.fromkeys(targets):
        lacking = [(block, names) for block, names in blocks if target not in names]
        if default and lacking and len(lacking) == len(blocks):
            absent.append(target)
        elif lacking:
            block, names = lacking[0]
            raise ConfigError(
                f"transfer.lora_targets: `{target}` is no layer of {type(model).__name__}'s block "
                f"`{block.name}`, whose layers that take adapters are {', '.join(sorted(names))}"
            )
    if absent:
        logging.info(
            "transfer.lora_targets: %s's blocks have no %s (not adapted)",
            type(model).__name__,
            ", ".join(absent),
        )


@transfer_strategy.register
class LoRA(transfer_strategy.TransferStrategy):
    """Freezes the backbone and adds trainable `alpha / rank * A @ B` to its projections.

    Keras' own `enable_lora` makes the adapters (A random, B zero, so
    training starts from the pretrained function); keras-hub's
    `Backbone.enable_lora` would adapt only query and value and cannot set
    alpha, so the layers are chosen here. The projections' biases stay
    frozen too; the task's head trains in full. Before evaluation and export
    the adapters are merged into the kernels and removed (`finalize`), so
    the SavedModel is a plain model with the original shapes.
    """

    name = "lora"

    def prepare(self, model, backbone):
        cfg = self.config
        if cfg.lora_rank < 1 or cfg.lora_alpha <= 0:
            raise ValueError(
                f"transfer.lora_rank must be >= 1 and lora_alpha > 0, got "
                f"{cfg.lora_rank} and {cfg.lora_alpha}"
            )
        _check_targets(cfg.lora_targets, backbone.model)
        targets = set(cfg.lora_targets)
        found = [
            layer
            for layer in compat.flatten_layers(backbone.model)
            if layer.name in targets and hasattr(layer, "enable_lora")
        ]
        if not found:
            raise ValueError(
                f"transfer.lora_targets: none of {sorted(targets)} is a projection of "
                f"{type(backbone.model).__name__}"
            )
        backbone.model.trainable = False
        # A model lists a variable as trainable when the variable's own flag
        # is set, whatever its layer's: only the adapters' are. (Keras creates
        # them untrainable in a frozen layer.)
        for layer in found:
            layer.enable_lora(cfg.lora_rank, lora_alpha=cfg.lora_alpha)
            for name in compat.LORA_WEIGHTS:
                getattr(layer, name).trainable = True

    def finalize(self, model):
        for layer in _adapted(model):
            compat.merge_lora(layer)
