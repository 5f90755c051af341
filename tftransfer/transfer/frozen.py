"""`frozen`: feature extraction, the backbone fixed and only the head trained.

The backbone runs without dropout (its outputs are the features, as Keras'
transfer-learning guide calls a frozen base with `training=False`), so a
text's features never change and text-level tasks compute them once
(`transfer.cache_features`, `feature_cache`).
"""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class Frozen(transfer_strategy.TransferStrategy):
    """Freezes every backbone weight; the task's head trains alone."""

    name = "frozen"
    backbone_dropout = 0.0

    def caches_features(self):
        return bool(self.config.cache_features)

    def prepare(self, model, backbone):
        backbone.model.trainable = False
        if not model.trainable_variables:
            raise ValueError(
                "transfer.strategy=frozen: this task has no weights outside the backbone "
                "(e.g. causal_lm's output layer is the tied embedding); use lora or full"
            )
