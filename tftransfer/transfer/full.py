"""`full`: fine-tune every weight (the default)."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class Full(transfer_strategy.TransferStrategy):
    """Every backbone and head weight trains at `trainer.learning_rate`."""

    name = "full"
