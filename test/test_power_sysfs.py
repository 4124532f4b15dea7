"""INA3221 (hwmon and iio), RAPL and thermal parsers on fake sysfs trees laid out like
the real boards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power import ina3221 as ina_mod
from edge_trt_ros.power.ina3221 import find_ina3221_devices, probe_ina3221
from edge_trt_ros.power.rapl import probe_rapl, wrap_delta
from edge_trt_ros.power.reading import Scope
from edge_trt_ros.power.thermal import read_thermal, read_thermal_zones

I2C_BUS = "sys/devices/platform/bus@0/c240000.i2c/i2c-1"


def _write(path: Path, text: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def make_hwmon(
    root: Path, hwmon: int, addr: str, channels: dict[int, tuple[str, int, int]]
) -> Path:
    """Mainline ina3221 hwmon device, linked from /sys/class/hwmon and /sys/bus/i2c."""
    dev = root / I2C_BUS / addr
    d = dev / "hwmon" / f"hwmon{hwmon}"
    _write(d / "name", "ina3221")
    for n, (label, mv, ma) in channels.items():
        _write(d / f"in{n}_label", label)
        _write(d / f"in{n}_input", mv)
        _write(d / f"curr{n}_input", ma)
        _write(d / f"curr{n}_max", 32760)
        _write(d / f"curr{n}_crit", 32760)
        _write(d / f"in{n + 3}_input", 1200)  # shunt voltage (uV), no label
        _write(d / f"shunt{n}_resistor", 5000)
    _write(d / "in7_label", "sum of shunt voltages")
    _write(d / "in7_input", 3000)
    _write(d / "curr4_input", 999)
    for link, target in (
        (root / "sys/class/hwmon" / f"hwmon{hwmon}", d),
        (root / "sys/bus/i2c/devices" / addr, dev),
    ):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(os.path.relpath(target, link.parent))
    return d


def make_other_hwmon(root: Path, hwmon: int, name: str) -> None:
    d = root / "sys/devices/virtual/thermal" / f"hw{hwmon}" / f"hwmon{hwmon}"
    _write(d / "name", name)
    _write(d / "temp1_input", 45000)
    link = root / "sys/class/hwmon" / f"hwmon{hwmon}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(d, link.parent))


def orin_nx_tree(root: Path, hwmon: int = 3) -> Path:
    """Orin NX / Orin Nano (JetPack 6): one INA3221 at 1-0040."""
    make_other_hwmon(root, 0, "pwmfan")
    return make_hwmon(
        root,
        hwmon,
        "1-0040",
        {1: ("VDD_IN", 5040, 1408), 2: ("VDD_CPU_GPU_CV", 5064, 496), 3: ("VDD_SOC", 5064, 384)},
    )


def agx_orin_tree(root: Path) -> None:
    """AGX Orin: two chips, the second with two NC channels, no VDD_IN."""
    make_hwmon(
        root,
        1,
        "1-0040",
        {
            1: ("VDD_GPU_SOC", 4984, 1224),
            2: ("VDD_CPU_CV", 4984, 640),
            3: ("VIN_SYS_5V0", 4968, 632),
        },
    )
    make_hwmon(
        root, 2, "1-0041", {1: ("NC", 0, 0), 2: ("VDDQ_VDD2_1V8AO", 4976, 168), 3: ("NC", 0, 0)}
    )


def nano_tree(root: Path) -> Path:
    """Jetson Nano (JetPack 4): ina3221x iio driver at 6-0040, mW power files."""
    d = root / "sys/devices/7000c400.i2c/i2c-6/6-0040/iio:device0"
    _write(d / "name", "ina3221x")
    for n, (label, mw, mv, ma) in enumerate(
        [
            ("POM_5V_IN", 2860, 5000, 572),
            ("POM_5V_GPU", 200, 5000, 40),
            ("POM_5V_CPU", 830, 5000, 166),
        ]
    ):
        _write(d / f"rail_name_{n}", label)
        _write(d / f"in_power{n}_input", mw)
        _write(d / f"in_voltage{n}_input", mv)
        _write(d / f"in_current{n}_input", ma)
        _write(d / f"warn_current_limit_{n}", 32760)
    link = root / "sys/bus/i2c/devices/6-0040"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(d.parent, link.parent))
    return d


# -- INA3221 hwmon -----------------------------------------------------------------------
def test_orin_nx_total_is_vdd_in_mv_times_ma(tmp_path: Path) -> None:
    orin_nx_tree(tmp_path)
    s = probe_ina3221(tmp_path)
    r = s.read()
    assert s.name == "ina3221-hwmon" and s.scope == Scope.MODULE_INPUT
    assert r.watts == pytest.approx(5040 * 1408 / 1e6)
    assert set(r.rails) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}  # not the in7 sum
    assert r.rails["VDD_SOC"] == pytest.approx(5.064 * 0.384)
    assert r.source == "ina3221-hwmon:VDD_IN" and not r.estimated and r.energy_j is None


def test_rails_matched_by_label_not_hwmon_number(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    orin_nx_tree(a, hwmon=3)
    orin_nx_tree(b, hwmon=7)
    assert probe_ina3221(a).read().rails == probe_ina3221(b).read().rails


def test_one_device_found_once_through_both_links(tmp_path: Path) -> None:
    orin_nx_tree(tmp_path)
    devices = find_ina3221_devices(tmp_path)
    assert len(devices) == 1 and devices[0].driver == "hwmon"


def test_agx_orin_sums_documented_rails_and_skips_nc(tmp_path: Path) -> None:
    agx_orin_tree(tmp_path)
    rails = ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    s = probe_ina3221(tmp_path, total_rail=None, sum_rails=rails)
    r = s.read()
    assert s.scope == Scope.RAIL_SUM and "NC" not in r.rails
    expected = (4984 * 1224 + 4984 * 640 + 4968 * 632 + 4976 * 168) / 1e6
    assert r.watts == pytest.approx(expected)
    assert s.source.startswith("ina3221-hwmon:sum(")


def test_nano_iio_reads_milliwatt_files(tmp_path: Path) -> None:
    nano_tree(tmp_path)
    s = probe_ina3221(tmp_path)
    r = s.read()
    assert s.name == "ina3221-iio" and s.scope == Scope.MODULE_INPUT
    assert r.watts == pytest.approx(2.860)
    assert r.rails["POM_5V_CPU"] == pytest.approx(0.830)


def test_no_ina3221_gives_reason(tmp_path: Path) -> None:
    make_other_hwmon(tmp_path, 0, "coretemp")
    with pytest.raises(SensorError, match="no INA3221"):
        probe_ina3221(tmp_path)


def test_unreadable_file_gives_actionable_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = orin_nx_tree(tmp_path)
    blocked = d / "in1_input"
    real = ina_mod.is_readable
    monkeypatch.setattr(ina_mod, "is_readable", lambda p: p.resolve() != blocked and real(p))
    with pytest.raises(SensorError, match=r"in1_input is unreadable \(Permission denied\).*jtop"):
        probe_ina3221(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads 0o000")
def test_unreadable_file_by_mode(tmp_path: Path) -> None:
    d = orin_nx_tree(tmp_path)
    (d / "curr1_input").chmod(0)
    with pytest.raises(SensorError, match="Permission denied"):
        probe_ina3221(tmp_path)


def test_garbage_value_is_a_sensor_error(tmp_path: Path) -> None:
    d = orin_nx_tree(tmp_path)
    (d / "curr1_input").write_text("not a number\n")
    with pytest.raises(SensorError):
        probe_ina3221(tmp_path)


def test_total_rail_vanishing_mid_run_raises_sensor_error(tmp_path: Path) -> None:
    d = orin_nx_tree(tmp_path)
    s = probe_ina3221(tmp_path)
    s.read()
    (d / "in1_input").unlink()
    with pytest.raises(SensorError, match="vanished"):
        s.read()


def test_other_rail_vanishing_keeps_total(tmp_path: Path) -> None:
    d = orin_nx_tree(tmp_path)
    s = probe_ina3221(tmp_path)
    (d / "curr3_input").unlink()
    r = s.read()
    assert "VDD_SOC" not in r.rails and r.watts == pytest.approx(5.04 * 1.408)


def test_whole_device_disappearing(tmp_path: Path) -> None:
    import shutil

    d = orin_nx_tree(tmp_path)
    s = probe_ina3221(tmp_path)
    shutil.rmtree(d)
    with pytest.raises(SensorError):
        s.read()


# -- RAPL --------------------------------------------------------------------------------
def make_rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    base = root / "sys/class/powercap"
    for zone, (name, energy, max_range) in zones.items():
        _write(base / zone / "name", name)
        _write(base / zone / "energy_uj", energy)
        _write(base / zone / "max_energy_range_uj", max_range)
    return base


def test_wrap_delta() -> None:
    assert wrap_delta(100, 400, 1000) == 300
    assert wrap_delta(900, 100, 1000) == 200  # wrapped once
    assert wrap_delta(0, 0, 1000) == 0


def test_rapl_counter_survives_wrap_and_ignores_subzones(tmp_path: Path) -> None:
    max_range = 262_143_328_850
    base = make_rapl(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", max_range - 1_000_000, max_range),
            "intel-rapl:0:0": ("core", 5, max_range),
            "intel-rapl-mmio:0": ("package-0", 7, max_range),
        },
    )
    s = probe_rapl(tmp_path)
    assert s.scope == Scope.CPU_PACKAGE and s.source == "rapl:intel-rapl:0(package-0)"
    assert s.energy_j() == 0.0
    (base / "intel-rapl:0/energy_uj").write_text("2000000\n")  # wrapped: +1 J +2 J
    assert s.energy_j() == pytest.approx(3.0)
    (base / "intel-rapl:0/energy_uj").write_text("4000000\n")
    r = s.read()
    assert r.energy_j == pytest.approx(5.0) and not r.estimated


def test_rapl_sums_packages(tmp_path: Path) -> None:
    base = make_rapl(
        tmp_path,
        {"intel-rapl:0": ("package-0", 0, 10**9), "intel-rapl:1": ("package-1", 0, 10**9)},
    )
    s = probe_rapl(tmp_path)
    (base / "intel-rapl:0/energy_uj").write_text("1000000\n")
    (base / "intel-rapl:1/energy_uj").write_text("3000000\n")
    assert s.energy_j() == pytest.approx(4.0)


def test_rapl_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SensorError, match="no /sys/class/powercap"):
        probe_rapl(tmp_path)
    make_rapl(tmp_path, {"intel-rapl:0:0": ("core", 0, 10)})
    with pytest.raises(SensorError, match="no intel-rapl package zone"):
        probe_rapl(tmp_path)
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0, 10)})
    from edge_trt_ros.power import rapl as rapl_mod

    monkeypatch.setattr(rapl_mod, "is_readable", lambda p: False)
    with pytest.raises(SensorError, match="root-only"):
        probe_rapl(tmp_path)


def test_rapl_file_vanishing(tmp_path: Path) -> None:
    base = make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**9)})
    s = probe_rapl(tmp_path)
    (base / "intel-rapl:0/energy_uj").unlink()
    with pytest.raises(SensorError, match="vanished"):
        s.read()


# -- thermal -----------------------------------------------------------------------------
def make_zone(root: Path, n: int, kind: str, milli_c: int | str, passive: int | None) -> None:
    z = root / "sys/class/thermal" / f"thermal_zone{n}"
    _write(z / "type", kind)
    _write(z / "temp", milli_c)
    _write(z / "trip_point_0_type", "critical")
    _write(z / "trip_point_0_temp", 105000)
    if passive is not None:
        _write(z / "trip_point_1_type", "passive")
        _write(z / "trip_point_1_temp", passive)


def test_thermal_zones_and_throttling(tmp_path: Path) -> None:
    make_zone(tmp_path, 0, "cpu-thermal", 52500, 99000)
    make_zone(tmp_path, 1, "gpu-thermal", 99500, 99000)
    make_zone(tmp_path, 2, "cv0-thermal", "garbage", None)  # unreadable zone is skipped
    zones = read_thermal_zones(tmp_path)
    assert [z.type for z in zones] == ["cpu-thermal", "gpu-thermal"]
    st = read_thermal(tmp_path)
    assert st.max_celsius == pytest.approx(99.5)
    assert st.throttling and st.reasons == ("gpu-thermal>=99C",)


def test_thermal_nothing_there(tmp_path: Path) -> None:
    st = read_thermal(tmp_path)
    assert st.max_celsius is None and not st.throttling
