"""What several commands share: loading a config with the flags; the metrics summary line."""

from tftransfer.cli import common_flags


def load_params(config_files, params_override):
    from tftransfer import configs

    params = configs.load(config_files, params_override)
    configs.override(params, common_flags.runtime_overrides(), "command-line flags")
    configs.validate(params)
    return params


def summary(metrics, task_type):
    """The task's summary line of `metrics` (its `summary_metrics`)."""
    from tftransfer import tasks

    return tasks.get(task_type).summary(metrics)
