"""What a finished run's history says, for tests that compare against its start."""

from tftransfer.training import history


def untrained(run, metric):
    """The step-0 evaluation of a run (`trainer.eval_on_start`): a floor's baseline."""
    return next(r for r in history.read(run) if r["step"] == 0 and metric in r)
