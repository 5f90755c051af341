"""`runtime.mixed_precision: auto`: bfloat16 where the hardware has bf16 units, recorded."""

import pytest
import yaml

from tftransfer import configs, experiment, export, fileio
from tftransfer.run_dir import RunDir
from tftransfer.training import auto_precision, precision

XEON_AMX = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_AVX2 = "flags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Makes `auto` see a CPU with the given /proc/cpuinfo (no environment pin, no GPU)."""
    monkeypatch.delenv(auto_precision.ENV, raising=False)
    monkeypatch.setattr(auto_precision, "gpu_capabilities", lambda strategy: [])

    def use(cpuinfo):
        path = tmp_path / "cpuinfo"
        path.write_text("processor\t: 0\n" + cpuinfo + "\nprocessor\t: 1\n" + cpuinfo)
        real = auto_precision.cpu_flags
        monkeypatch.setattr(auto_precision, "cpu_flags", lambda: real(str(path)))

    return use


def test_auto_picks_bfloat16_only_where_the_device_has_bf16_units():
    choose = auto_precision.choose
    assert choose({"avx2", "avx512f", "amx_bf16"}, [])[0] == "bfloat16"
    assert choose({"avx2", "avx512f", "avx512_vnni"}, [])[0] == "float32"  # AVX-512, no bf16
    assert choose(set(), [(8, 0)]) == ("bfloat16", "auto: GPU compute capability 8.0")
    # A GPU run is decided by its GPUs, not the host CPU; the weakest GPU decides.
    assert choose({"avx512_bf16"}, [(9, 0), (7, 0)])[0] == "float32"
    assert choose(set(), [], tpu=True) == ("bfloat16", "auto: TPU")


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: EPYC\n" + XEON_AMX)
    assert {"avx512_bf16", "amx_bf16"} <= auto_precision.cpu_flags(str(path))
    assert auto_precision.cpu_flags(str(tmp_path / "absent")) == set()  # not Linux: float32


def test_a_set_value_wins_and_the_environment_pins_auto(cpu, monkeypatch):
    cpu(XEON_AMX)
    assert precision.resolve("auto")[0] == "bfloat16"
    assert precision.resolve("float16") == ("float16", "float16 (set)")
    assert precision.resolve("") == ("float32", "float32 (set)")  # runs written before `auto`
    monkeypatch.setenv(auto_precision.ENV, "float32")
    assert precision.resolve("auto") == ("float32", "float32 (auto: $TFTRANSFER_AUTO_PRECISION)")
    assert precision.resolve("bfloat16")[0] == "bfloat16"
    monkeypatch.setenv(auto_precision.ENV, "int8")
    with pytest.raises(configs.ConfigError, match="TFTRANSFER_AUTO_PRECISION='int8'.*bfloat16"):
        precision.resolve("auto")


def test_auto_is_the_default():
    assert configs.load([], {}).runtime.mixed_precision == "auto"


@pytest.mark.parametrize("cpuinfo,dtype", [(XEON_AMX, "bfloat16"), (EPYC_AVX2, "float32")])
def test_a_run_computes_in_what_auto_chose_and_records_it(
    cpu, monkeypatch, tiny_params, tmp_path, cpuinfo, dtype
):
    cpu(cpuinfo)
    built, build = [], experiment.build
    monkeypatch.setattr(
        experiment, "build", lambda *a, **k: built.append(build(*a, **k)) or built[-1]
    )
    model_dir = str(tmp_path / "run")
    experiment.train(tiny_params.replace(trainer={"train_steps": 2, "epochs": 0}), model_dir)
    assert built[0].backbone.model.get_layer("transformer_layer_0").compute_dtype == dtype
    assert fileio.read_json(RunDir(model_dir).summary)["compute_dtype"] == dtype
    with open(RunDir(model_dir).params, encoding="utf-8") as f:
        text = f.read()
    assert f"# runtime.mixed_precision: {dtype} (auto: " in text
    # The config keeps `auto`: the same params.yaml decides again on another machine.
    assert yaml.safe_load(text)["runtime"]["mixed_precision"] == "auto"


@pytest.mark.slow
def test_the_export_follows_the_run_unless_told(cpu, tiny_params, tmp_path):
    cpu(EPYC_AVX2)
    params = tiny_params.replace(
        trainer={"train_steps": 1, "epochs": 0}, runtime={"mixed_precision": "bfloat16"}
    )
    model_dir = str(tmp_path / "run")
    experiment.train(params, model_dir)
    followed = export.export_run(model_dir, str(tmp_path / "a"))
    assert export.read_metadata(followed)["compute_dtype"] == "bfloat16"
    told = export.export_run(model_dir, str(tmp_path / "b"), mixed_precision="auto")
    assert export.read_metadata(told)["compute_dtype"] == "float32"  # this CPU has no bf16
