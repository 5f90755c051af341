"""Transfer strategies, chosen by `transfer.strategy` in the config."""

from tftransfer.transfer import (  # noqa: F401  (each registers itself)
    distill,
    frozen,
    full,
    gradual_unfreezing,
    llrd,
    lora,
    scratch,
)
from tftransfer.transfer.transfer_config import TransferConfig  # noqa: F401
from tftransfer.transfer.transfer_strategy import (  # noqa: F401
    LayerDepths,
    TransferStrategy,
    get,
    register,
    registered,
)
