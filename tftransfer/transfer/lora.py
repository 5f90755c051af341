"""`lora`: low-rank adapters on the backbone's projections (Hu et al., 2021)."""

from tftransfer import compat
from tftransfer.transfer import transfer_strategy


def _adapted(model):
    return [
        layer for layer in compat.flatten_layers(model) if getattr(layer, "lora_enabled", False)
    ]


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
