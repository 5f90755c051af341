"""`frozen`: feature extraction, the backbone fixed and only the head trained."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class Frozen(transfer_strategy.TransferStrategy):
    """Freezes every backbone weight; the task's head trains alone."""

    name = "frozen"

    def prepare(self, model, backbone):
        backbone.model.trainable = False
        if not model.trainable_variables:
            raise ValueError(
                "transfer.strategy=frozen: this task has no weights outside the backbone "
                "(e.g. causal_lm's output layer is the tied embedding); use lora or full"
            )
