"""Sensor precedence, skip reasons and degradation when a sensor fails mid-run."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from test_power_jtop import FakeJtop
from test_power_sysfs import make_rapl, orin_nx_tree

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.estimate import CpuUtilisation, EstimatedSensor, estimate_watts
from edge_trt_ros.power.profiles import load_profiles
from edge_trt_ros.power.reading import PowerReading, PowerSensor
from edge_trt_ros.power.select import FallbackSensor, detect_sensors, open_power_sensor

PROFILES = load_profiles()


class Fake:
    estimated = False
    scope = "module_input"

    def __init__(self, name: str, watts: float, fail_after: int | None = None) -> None:
        self.name = self.source = name
        self.watts = watts
        self.fail_after = fail_after
        self.reads = 0

    def read(self) -> PowerReading:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise SensorError(f"{self.name} file vanished")
        return PowerReading(self.watts, float(self.reads), self.scope, self.name)

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def ok(name: str, w: float = 1.0):  # type: ignore[no-untyped-def]
    return name, lambda: Fake(name, w)


def bad(name: str, reason: str):  # type: ignore[no-untyped-def]
    def probe() -> PowerSensor:
        raise SensorError(reason)

    return name, probe


def test_order_is_kept_and_estimate_is_last() -> None:
    det = detect_sensors(PROFILES["x86_cpu"], probes=[ok("a"), bad("b", "nope"), ok("c")])
    assert [s.name for s in det.sensors] == ["a", "c", "estimate"]
    assert det.skipped == [("b", "nope")]


def test_unexpected_probe_exception_is_a_skip_reason() -> None:
    def boom() -> PowerSensor:
        raise OSError("driver exploded")

    det = detect_sensors(PROFILES["x86_cpu"], probes=[("x", boom)])
    assert det.skipped == [("x", "unexpected OSError: driver exploded")]
    assert det.sensors[0].estimated


def test_fallback_degrades_with_logged_reason(caplog: pytest.LogCaptureFixture) -> None:
    first, second = Fake("ina3221-hwmon", 7.0, fail_after=2), Fake("nvml", 50.0)
    chain = FallbackSensor([first, second])
    assert [chain.read().watts for _ in range(2)] == [7.0, 7.0]
    with caplog.at_level(logging.WARNING, logger="edge_trt_ros.power.select"):
        r = chain.read()
    assert r.watts == 50.0 and chain.name == "nvml"
    assert chain.events[0][1:] == ("ina3221-hwmon", "nvml", "ina3221-hwmon file vanished")
    assert "falling back to nvml" in caplog.text


def test_fallback_never_raises_even_when_all_fail() -> None:
    chain = FallbackSensor([Fake("a", 1.0, fail_after=0), Fake("b", 1.0, fail_after=0)])
    r = chain.read()
    assert math.isnan(r.watts) and r.estimated and r.source == "none"
    assert chain.energy_j() is None


def test_estimate_model_and_clamping() -> None:
    assert estimate_watts(4.0, 15.0, 0.5) == pytest.approx(9.5)
    assert estimate_watts(4.0, 15.0, 2.0) == 15.0 and estimate_watts(4.0, 15.0, -1) == 4.0
    s = EstimatedSensor(PROFILES["orin_nx_16gb"], lambda: 1.0, power_mode="25W")
    r = s.read()
    assert r.watts == 25.0 and r.estimated and s.source.startswith("estimate:orin_nx_16gb:25W")
    broken = EstimatedSensor(PROFILES["orin_nx_16gb"], lambda: 1 / 0)
    assert broken.read().watts == PROFILES["orin_nx_16gb"].idle_watts


def test_cpu_utilisation_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "proc/stat"
    stat.parent.mkdir(parents=True)
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    u = CpuUtilisation(tmp_path)
    stat.write_text("cpu  150 0 150 900 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert u() == pytest.approx(0.5)


def test_detect_on_fake_orin_nx(tmp_path: Path) -> None:
    orin_nx_tree(tmp_path)
    load = tmp_path / "sys/devices/platform/bus@0/17000000.gpu/load"
    load.parent.mkdir(parents=True, exist_ok=True)
    load.write_text("500\n")
    det = detect_sensors(PROFILES["orin_nx_16gb"], tmp_path, use_jtop=False, use_nvml=False)
    assert [s.name for s in det.sensors] == ["ina3221-hwmon", "estimate"]
    assert dict(det.skipped) == {
        "jtop": "disabled",
        "nvml": "disabled",
        "rapl": "no /sys/class/powercap (kernel without powercap, a VM, or not x86)",
    }
    est = det.sensors[-1]
    assert "GPU util" in est.source
    assert est.read().watts == pytest.approx(4.5 + 0.5 * (15 - 4.5))  # 15W default mode


def test_jtop_comes_after_sysfs_and_before_rapl(tmp_path: Path) -> None:
    orin_nx_tree(tmp_path)
    make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**9)})
    power = json.loads((Path(__file__).parent / "fixtures/power/jtop_orin_nx.json").read_text())
    det = detect_sensors(
        PROFILES["orin_nx_16gb"], tmp_path, jtop_factory=lambda: FakeJtop(power), use_nvml=False
    )
    assert [s.name for s in det.sensors] == ["ina3221-hwmon", "jtop", "rapl", "estimate"]


def test_sysfs_vanishing_degrades_to_jtop(tmp_path: Path) -> None:
    d = orin_nx_tree(tmp_path)
    power = json.loads((Path(__file__).parent / "fixtures/power/jtop_orin_nx.json").read_text())
    det = detect_sensors(
        PROFILES["orin_nx_16gb"], tmp_path, jtop_factory=lambda: FakeJtop(power), use_nvml=False
    )
    chain = FallbackSensor(det.sensors)
    assert chain.read().source == "ina3221-hwmon:VDD_IN"
    (d / "in1_input").unlink()
    assert chain.read().source == "jtop:VDD_IN"


def test_open_power_sensor_on_empty_machine(tmp_path: Path) -> None:
    sensor, det = open_power_sensor("auto", tmp_path, use_jtop=False, use_nvml=False)
    assert det.profile.name == "x86_cpu" and sensor.estimated
    assert sensor.read().estimated
    with pytest.raises(ValueError, match="unknown hardware_profile"):
        open_power_sensor("orin_nx_32gb", tmp_path, use_jtop=False, use_nvml=False)
