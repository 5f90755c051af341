"""`scratch`: the same architecture and tokenizer, random weights."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class Scratch(transfer_strategy.TransferStrategy):
    """Trains everything from a random initialisation.

    The baseline that measures transfer: the difference to `full` at the
    same data and budget is what pretraining contributed. Training from
    scratch usually wants a higher `trainer.learning_rate` than fine-tuning.
    """

    name = "scratch"
    random_init = True
