import os

import pytest

from tftransfer import configs, tasks


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_later_files_and_override_win(tmp_path):
    a = _write(tmp_path / "a.yaml", "trainer:\n  epochs: 5\n  batch_size: 16\n")
    b = _write(tmp_path / "b.yaml", "trainer:\n  epochs: 2\n")
    params = configs.load([a, b], "trainer.batch_size=4")
    assert params.trainer.epochs == 2
    assert params.trainer.batch_size == 4


def test_unknown_key_names_key_and_file(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "trainer:\n  epoch: 5\n")
    with pytest.raises(configs.ConfigError, match=r"bad.yaml.*`trainer.epoch`"):
        configs.load([bad])
    with pytest.raises(configs.ConfigError, match=r"--params_override.*`data.train.pth`"):
        configs.load([], "data.train.pth=x.tsv")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(configs.ConfigError, match="not found"):
        configs.load([str(tmp_path / "nope.yaml")])
    bad = _write(tmp_path / "broken.yaml", "trainer: [epochs\n")
    with pytest.raises(
        configs.ConfigError,
        match=r"broken.yaml:2:1: invalid YAML: while parsing a flow sequence; expected ',' or ']'",
    ):
        configs.load([bad])


def test_saved_params_round_trip(tmp_path):
    params = configs.load(
        [], {"task": {"text_classification": {"labels": ["a", "b"]}}, "backbone": {"spec": "/x/y"}}
    )
    configs.save(params, str(tmp_path / "params.yaml"))
    again = configs.from_model_dir(str(tmp_path))
    assert again.as_dict() == params.as_dict()


def test_directory_given_as_config_file_is_named(tmp_path):
    with pytest.raises(configs.ConfigError, match=f"{tmp_path} is a directory"):
        configs.load([str(tmp_path)])


def test_model_dir_without_params(tmp_path):
    with pytest.raises(configs.ConfigError, match="params.yaml not found"):
        configs.from_model_dir(str(tmp_path))


_CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(_CONFIGS) if n.endswith(".yaml")))
def test_shipped_configs_load(name):
    here = os.path.join(_CONFIGS, name)
    params = configs.load([here])
    assert params.task.type in tasks.registered()
    if "\ntask:" in "\n" + open(here, encoding="utf-8").read():
        assert params.data.train.path  # every complete config names its training data


def _overlays():
    for folder, _, names in os.walk(_CONFIGS):
        for n in names:
            path = os.path.join(folder, n)
            if n.endswith(".yaml") and "\ntask:" not in "\n" + open(path).read():
                yield os.path.relpath(path, _CONFIGS)


@pytest.mark.parametrize("name", sorted(_overlays()))
def test_overlays_load_on_the_configs_they_name(name):
    import re

    here = os.path.join(_CONFIGS, name)
    bases = re.findall(r"configs/([\w/]+\.yaml)", open(here, encoding="utf-8").read())
    overlays = set(_overlays())
    bases = [b for b in bases if b not in overlays]  # the complete configs it layers on
    assert bases, f"{name}: say which config it layers on"
    for base in bases:
        params = configs.load([os.path.join(_CONFIGS, base), here])
        assert params.data.train.path


@pytest.mark.parametrize(
    "override,key,allowed",
    [
        ("task.text_classification.pooling=maxx", "task.text_classification.pooling", "pooled"),
        ("export.checkpoint=newest", "export.checkpoint", "best, latest"),
        ("runtime.distribution_strategy=gpus", "runtime.distribution_strategy", "mirrored"),
        ("data.train.quoting=all", "data.train.quoting", "minimal, none"),
    ],
)
def test_enumerated_keys_reject_unknown_values_naming_key_and_choices(override, key, allowed):
    with pytest.raises(configs.ConfigError, match=rf"{key} must be one of: .*{allowed}"):
        configs.load([], override)


def test_task_blocks_come_from_the_registered_tasks():
    from tftransfer import tasks

    params = configs.load([])
    for name, task_cls in tasks.registered().items():
        assert isinstance(params.task.__dict__[name], task_cls.config_class)
    with pytest.raises(configs.ConfigError, match=r"task.type must be one of: .*token_class"):
        configs.load([], "task.type=tagging")


def test_numbers_without_a_dot_are_numbers_and_words_are_errors():
    params = configs.load([], "trainer.learning_rate=1e-2")
    assert params.trainer.learning_rate == 0.01
    with pytest.raises(configs.ConfigError, match="`trainer.learning_rate` must be a number"):
        configs.load([], "trainer.learning_rate=fast")


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ('trainer: {epochs: "abc"}', "`trainer.epochs` must be a whole number, got 'abc'"),
        ("trainer: {epochs: 1.7}", "`trainer.epochs` must be a whole number, got 1.7"),
        ("trainer: {eval_on_start: 2}", "`trainer.eval_on_start` must be true or false"),
        ("trainer: {learning_rate: -0.1}", "trainer.learning_rate must be > 0"),
        ("trainer: {train_steps: -5}", "trainer.train_steps must be >= 0"),
        ("trainer: {batch_size: 0}", "trainer.batch_size must be >= 1"),
        ("trainer: {warmup_ratio: 1.5}", "trainer.warmup_ratio must be >= 0.0 and <= 1.0"),
    ],
)
def test_wrong_types_and_ranges_name_the_key_and_file(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(configs.ConfigError) as error:
        configs.load([str(path)])
    assert message in str(error.value)


def test_whole_numbers_and_booleans_given_as_text_are_read():
    params = configs.load([], "trainer.epochs=2.0,trainer.eval_on_start=true")
    assert params.trainer.epochs == 2 and isinstance(params.trainer.epochs, int)
    assert params.trainer.eval_on_start is True


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("trainer: {seed: *i}")  # 9^9 = 387 million strings once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(configs.ConfigError, match="bomb.yaml: expands to over 100,000 values"):
        configs.load([str(path)])


def test_errors_show_at_most_a_few_hundred_characters_of_a_value():
    with pytest.raises(configs.ConfigError) as error:
        configs.load([], {"trainer": {"epochs": "x" * 100_000}})
    assert len(str(error.value)) < 400 and "100,002 characters" in str(error.value)


def test_column_names_with_a_header_says_which_to_change():
    with pytest.raises(
        configs.ConfigError, match="data.validation: column_names .* has_header: false"
    ):
        configs.load([], "data.validation.column_names=[a,b]")
    params = configs.load([], "data.validation.column_names=[a,b],data.validation.has_header=false")
    assert list(params.data.validation.column_names) == ["a", "b"]


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = _write(tmp_path / "twice.yaml", "trainer:\n  epochs: 3\n  batch_size: 8\n  epochs: 30\n")
    with pytest.raises(
        configs.ConfigError, match=r"twice.yaml:4:3: .*`epochs` appears twice \(lines 2 and 4\)"
    ):
        configs.load([path])
    with pytest.raises(configs.ConfigError, match="`epochs` appears twice"):
        configs.load([], "{trainer: {epochs: 1, epochs: 2}}")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(_CONFIGS) if n.endswith(".yaml")))
def test_shipped_configs_name_no_folder_outside_the_repository(name):
    # Data that cannot be bundled is named under ${TFTRANSFER_DATA}; files made
    # by a tool (named in the config's comments) under runs/; TFDS by name.
    root = os.path.join(_CONFIGS, "..")
    params = configs.load([os.path.join(_CONFIGS, name)])
    for split in ("train", "validation", "test", "unlabeled"):
        for part in getattr(params.data, split).path.split(","):
            if part and not part.startswith(("tfds:", "${TFTRANSFER_DATA}/", "runs/")):
                assert os.path.exists(os.path.join(root, part)), part


def _data_paths(path):
    """`(split, path)` for each data path a config file names (overlays too)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        data = (yaml.safe_load(f) or {}).get("data") or {}
    for split in ("train", "validation", "test", "unlabeled"):
        for part in str((data.get(split) or {}).get("path") or "").split(","):
            if part.strip():
                yield split, part.strip()


_ALL_CONFIGS = sorted(
    os.path.relpath(os.path.join(folder, n), _CONFIGS)
    for folder, _, names in os.walk(_CONFIGS)
    for n in names
    if n.endswith(".yaml")
)


@pytest.mark.parametrize("name", _ALL_CONFIGS)
def test_shipped_configs_name_data_any_user_can_get(name):
    # A fresh clone has only the repository: data is bundled, in the TFDS
    # catalogue, under $TFTRANSFER_DATA (the config says how to get it), or
    # made under runs/ by a tool the config names.
    import tensorflow_datasets as tfds

    here = os.path.join(_CONFIGS, name)
    text = open(here, encoding="utf-8").read()
    assert "shared/" not in text
    root = os.path.dirname(_CONFIGS)
    for split, path in _data_paths(here):
        if path.startswith("tfds:"):
            tfds.builder(path[len("tfds:") :])  # a catalogue name (no download)
        elif path.startswith("${TFTRANSFER_DATA}/"):
            assert "TFTRANSFER_DATA" in text.split("\ndata:")[0], f"{name}: say what goes there"
        elif path.startswith("runs/"):
            tools = [t for t in text.split() if t.startswith("tools/") and t.endswith(".py")]
            assert tools and all(os.path.exists(os.path.join(root, t)) for t in tools), name
        else:
            assert os.path.exists(os.path.join(root, path)), f"{name}: data.{split}.path {path}"


def test_a_combined_tfds_split_on_files_is_refused():
    # The train + dev layer on top of the local CoNLL files, without the
    # layer that lists both files, would train on eng.train alone.
    with pytest.raises(configs.ConfigError, match=r"data.train: split `train\+dev` combines"):
        configs.load(
            [
                os.path.join(_CONFIGS, "conll03_minilm.yaml"),
                os.path.join(_CONFIGS, "local", "conll2003.yaml"),
                os.path.join(_CONFIGS, "conll03_minilm_train_dev.yaml"),
            ]
        )
