"""What several commands print: the metrics summary line; loading a config with the flags."""

from tftransfer.cli import common_flags


def load_params(config_files, params_override):
    from tftransfer import configs

    params = configs.load(config_files, params_override)
    configs.override(params, common_flags.runtime_overrides(), "command-line flags")
    configs.validate(params)
    return params


def summary(metrics):
    keys = ("examples", "sentences", "questions", "accuracy", "macro_f1", "exact_match")
    keys += ("precision", "recall", "f1")
    keys += ("tokens", "nll", "perplexity")
    keys += ("micro_f1", "tuned_macro_f1", "pearson", "spearman", "mse", "mae")
    keys = [k for k in keys if k in metrics]
    return "Evaluation: " + ", ".join(
        f"{k}={metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
        for k in keys
    )
