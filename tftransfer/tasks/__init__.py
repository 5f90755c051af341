"""Tasks: registered by name, chosen by `task.type` in the config."""

from tftransfer.tasks import (
    question_answering,  # noqa: F401  (registers)
    text_classification,  # noqa: F401  (registers)
    token_classification,  # noqa: F401  (registers)
)
from tftransfer.tasks.base import Task, get, register  # noqa: F401
