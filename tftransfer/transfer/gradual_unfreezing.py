"""`gradual_unfreezing`: ULMFiT's schedule, from the top down."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class GradualUnfreezing(transfer_strategy.TransferStrategy):
    """The head trains first; every `unfreeze_every` steps one more layer below joins.

    Stage 0 trains the top (head, pooler, final norm), stage `k` also the
    `k` highest blocks, stage `L + 1` the embeddings too, i.e. everything
    (Howard & Ruder, 2018). `unfreeze_every: 0` moves one stage per epoch.
    Frozen layers get no gradient at all (no weight decay either), so
    backpropagation stops at the lowest unfrozen layer.
    """

    name = "gradual_unfreezing"

    def trained_variables(self, model, backbone, steps_per_epoch):
        every = self.config.unfreeze_every or steps_per_epoch
        if every < 1:
            raise ValueError(f"transfer.unfreeze_every must be >= 0, got {every}")
        depth = transfer_strategy.LayerDepths(model, backbone)
        variables = list(model.trainable_variables)

        def at(step):
            lowest = depth.top - min(step // every, depth.top)
            return [v for v in variables if depth(v) >= lowest]

        return at
