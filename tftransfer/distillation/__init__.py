"""Knowledge distillation (`transfer.strategy: distill`): a student trained on a teacher's outputs.

`prepare` runs before the student is built: it loads the teacher, takes
its label names where the student's config has none, reads
`data.unlabeled` and gets the teacher's outputs on every training text
(stored with the run, `teacher_outputs`). `training_task` then turns the
student's prepared task into the `DistilledTask` that training encodes and
takes the loss from.
"""

from tftransfer.distillation.distillation import Distillation, prepare, training_task  # noqa: F401
from tftransfer.distillation.distilled_task import DistilledTask  # noqa: F401
from tftransfer.distillation.teacher import Teacher  # noqa: F401
