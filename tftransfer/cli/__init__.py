"""The `tftransfer` command: one module per subcommand, each with its own flags.

`main.py` dispatches and turns input errors into one line; `common_flags.py`
holds the flags several commands share; `records.py` what predict and
generate read and write; `results.py` what train and evaluate print.
"""

from tftransfer.cli.common_flags import FLAGS, VERBOSE_ENV, command_flags  # noqa: F401
from tftransfer.cli.main import COMMANDS, main, usage  # noqa: F401
