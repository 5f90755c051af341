"""Runs `tftransfer <command>` in this process, as a user's shell would see it.

`cli.main` forgets its flags when it returns, so tests can call it many
times; a fresh interpreter per call (`fresh_process`) costs seconds each,
which a property test over every config field cannot afford.
"""

import contextlib
import dataclasses
import io

from tftransfer import cli


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self):
        return [line for line in self.stderr.splitlines() if line.strip()]


def run(*args):
    """`Result` of `tftransfer *args`; the exit status of `sys.exit`, else 0."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(["tftransfer", *args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())
