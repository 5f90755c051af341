"""`distill`: knowledge distillation, every weight trained on a teacher's outputs too."""

from tftransfer.transfer import transfer_strategy


@transfer_strategy.register
class Distill(transfer_strategy.TransferStrategy):
    """Fine-tunes every weight toward a teacher's outputs and the gold labels.

    The run (`experiment.build`) asks the teacher (`transfer.teacher`) for
    its outputs on the training texts and `data.unlabeled`, once, and the
    loss mixes them with the gold labels (`tftransfer.distillation`).
    """

    name = "distill"
    uses_teacher = True
