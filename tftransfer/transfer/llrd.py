"""`llrd`: layer-wise learning-rate decay."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class LayerwiseDecay(transfer_strategy.TransferStrategy):
    """Lower layers learn more slowly: they hold the more general features.

    The head (with the pooler and final norm) trains at
    `trainer.learning_rate`; block `i` of `L` at `decay ** (L + 1 - i)` times
    that, the embeddings at `decay ** (L + 1)` (ELECTRA's and BEiT's
    layer-wise decay; ULMFiT's discriminative fine-tuning).
    """

    name = "llrd"

    def learning_rate_multipliers(self, model, backbone):
        decay = self.config.llrd_decay
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"transfer.llrd_decay must be in (0, 1], got {decay}")
        depth = transfer_strategy.LayerDepths(model, backbone)
        return {id(v): decay ** (depth.top - depth(v)) for v in model.trainable_variables}
