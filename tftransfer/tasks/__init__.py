"""Tasks: registered by name (with their configs), chosen by `task.type` in the config."""

from tftransfer.tasks import (
    causal_lm,  # noqa: F401  (registers)
    masked_lm,  # noqa: F401  (registers)
    multi_label_classification,  # noqa: F401  (registers)
    question_answering,  # noqa: F401  (registers)
    text_classification,  # noqa: F401  (registers)
    text_regression,  # noqa: F401  (registers)
    token_classification,  # noqa: F401  (registers)
)
from tftransfer.tasks.base import Metric, Task, TaskConfig  # noqa: F401
from tftransfer.tasks.registry import get, load_plugins, register, registered  # noqa: F401
