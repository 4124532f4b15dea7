"""Hardware profile files and auto-detection on fake device trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.power.profiles import (
    hardware_profiles_dir,
    load_profiles,
    resolve_profile,
)

EXPECTED = {
    "jetson_nano", "xavier_nx", "orin_nano", "orin_nx_8gb", "orin_nx_16gb", "agx_orin", "thor",
    "x86_dgpu", "x86_cpu",
}  # fmt: skip

ORIN_NX_COMPAT = "nvidia,p3768-0000+p3767-{sku}\0nvidia,p3767-{sku}\0nvidia,tegra234\0"


def fake_machine(
    root: Path,
    model: str | None = None,
    compatible: str | None = None,
    mem_kb: int | None = None,
    dt_base: str = "proc/device-tree",
) -> Path:
    if model is not None:
        (root / dt_base).mkdir(parents=True, exist_ok=True)
        (root / dt_base / "model").write_bytes(model.encode() + b"\0")
        if compatible is not None:
            (root / dt_base / "compatible").write_bytes(compatible.encode())
    (root / "proc").mkdir(parents=True, exist_ok=True)
    if mem_kb is not None:
        (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kb} kB\nMemFree: 1 kB\n")
    (root / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 3000\n")
    return root


def test_all_profiles_load_with_valid_fields() -> None:
    profiles = load_profiles()
    assert set(profiles) == EXPECTED
    for p in profiles.values():
        assert p.default_fusion_profile in FUSION_PROFILES
        assert p.memory_bandwidth_gbps > 0 and p.idle_watts < p.tdp_watts()
        assert p.power_mode(p.default_power_mode).name == p.default_power_mode
        assert p.path is not None and "#" in p.path.read_text()  # figures carry sources


def test_known_figures() -> None:
    p = load_profiles()
    assert p["orin_nx_16gb"].dla_cores == 2 and p["orin_nx_8gb"].dla_cores == 1
    assert p["orin_nano"].dla_cores == 0 and p["thor"].dla_cores == 0
    assert p["agx_orin"].memory_bandwidth_gbps == 204.8
    assert (
        p["agx_orin"].ina3221_total_rail is None
        and "VDD_GPU_SOC" in p["agx_orin"].ina3221_sum_rails
    )
    assert p["jetson_nano"].ina3221_total_rail == "POM_5V_IN"
    assert p["orin_nx_16gb"].tdp_watts("25w") == 25 and p["agx_orin"].tdp_watts("0") == 60


def test_profiles_dir_is_the_repo_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert hardware_profiles_dir() == Path(__file__).resolve().parents[1] / "config" / "hardware"
    (tmp_path / "x.yaml").write_text("name: x\n")
    monkeypatch.setenv("EDGE_TRT_HARDWARE_DIR", str(tmp_path))
    assert hardware_profiles_dir() == tmp_path


@pytest.mark.parametrize(
    ("model", "compatible", "mem_kb", "expected"),
    [
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
         ORIN_NX_COMPAT.format(sku="0000"), 15_800_000, "orin_nx_16gb"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
         ORIN_NX_COMPAT.format(sku="0001"), 7_600_000, "orin_nx_8gb"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", None, 7_600_000,
         "orin_nx_8gb"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", None, 15_800_000,
         "orin_nx_16gb"),
        ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
         ORIN_NX_COMPAT.format(sku="0005"), 7_600_000, "orin_nano"),
        ("NVIDIA Jetson Nano Developer Kit", "nvidia,p3450-0000\0nvidia,tegra210\0", 4_000_000,
         "jetson_nano"),
        ("NVIDIA Jetson Xavier NX Developer Kit", "nvidia,p3509-0000+p3668-0000\0", 7_700_000,
         "xavier_nx"),
        ("Jetson AGX Orin", "nvidia,p3737-0000+p3701-0005\0nvidia,tegra234\0", 64_000_000,
         "agx_orin"),
        ("NVIDIA Jetson AGX Thor Developer Kit", None, 128_000_000, "thor"),
    ],
)  # fmt: skip
def test_jetson_detection(
    tmp_path: Path, model: str, compatible: str | None, mem_kb: int, expected: str
) -> None:
    fake_machine(tmp_path, model, compatible, mem_kb)
    profile, why = resolve_profile("auto", tmp_path)
    assert profile.name == expected and "device tree" in why


def test_sys_firmware_devicetree_path(tmp_path: Path) -> None:
    fake_machine(tmp_path, "Jetson AGX Orin", None, 32_000_000, "sys/firmware/devicetree/base")
    assert resolve_profile("auto", tmp_path)[0].name == "agx_orin"


def test_nvml_then_cpuinfo(tmp_path: Path) -> None:
    fake_machine(tmp_path, mem_kb=64_000_000)
    p, why = resolve_profile("auto", tmp_path, nvml_name=lambda: "NVIDIA H100 80GB HBM3")
    assert p.name == "x86_dgpu" and "H100" in why
    p, why = resolve_profile("auto", tmp_path, nvml_name=lambda: None)
    assert p.name == "x86_cpu" and "Test CPU 3000" in why


def test_unknown_jetson_falls_back_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_machine(tmp_path, "NVIDIA Jetson TX2", "nvidia,tegra186\0", 8_000_000)
    assert resolve_profile("auto", tmp_path)[0].name == "x86_cpu"
    assert "matches no hardware profile" in caplog.text


def test_override_and_unknown_name(tmp_path: Path) -> None:
    fake_machine(tmp_path, "NVIDIA Jetson Nano Developer Kit")
    assert resolve_profile("agx_orin", tmp_path) == (load_profiles()["agx_orin"], "set explicitly")
    with pytest.raises(ValueError, match="known: auto, agx_orin"):
        resolve_profile("orin_agx", tmp_path)
