"""Temperature and throttling: a throttled device silently changes every efficiency figure.

Linux thermal zones give temperatures everywhere (Jetson: cpu-thermal, gpu-thermal,
tj-thermal...); "throttling" there means a zone at or above its first passive trip point.
On dGPUs NVML reports the temperature and the clock-event (throttle) reasons.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_trt_ros.power.nvml import NvmlSensor
from edge_trt_ros.power.sysfs import read_int, try_read_text, under

log = logging.getLogger("edge_trt_ros.power.thermal")

# NVML clock-event reason bits that mean "slowed down for power or heat"
# (GpuIdle, application clocks and sync boost are not throttling).
NVML_THROTTLE_BITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}

_TRIP_TYPE = re.compile(r"^trip_point_(\d+)_type$")


@dataclass(frozen=True)
class ZoneReading:
    """One thermal zone."""

    zone: str
    type: str
    celsius: float
    passive_trip_c: float | None = None

    @property
    def throttling(self) -> bool:
        return self.passive_trip_c is not None and self.celsius >= self.passive_trip_c


@dataclass(frozen=True)
class ThermalStatus:
    """Hottest temperature and whether anything is throttling, with the reasons."""

    max_celsius: float | None
    throttling: bool
    reasons: tuple[str, ...] = ()
    zones: tuple[ZoneReading, ...] = field(default_factory=tuple)
    gpu_celsius: float | None = None


def _passive_trip(zone: Path) -> float | None:
    trips = []
    for f in zone.glob("trip_point_*_type"):
        m = _TRIP_TYPE.match(f.name)
        if m and try_read_text(f) == "passive":
            try:
                trips.append(read_int(zone / f"trip_point_{m.group(1)}_temp") / 1000.0)
            except (OSError, ValueError, IndexError):
                continue
    return min(trips) if trips else None


def read_thermal_zones(root: Path | str = "/") -> list[ZoneReading]:
    """Every readable ``/sys/class/thermal/thermal_zone*`` (unreadable ones are skipped)."""
    out = []
    base = under(root, "/sys/class/thermal")
    for zone in sorted(base.glob("thermal_zone*"), key=lambda p: p.name):
        try:
            milli = read_int(zone / "temp")
        except (OSError, ValueError, IndexError):
            continue  # some Jetson zones return EINVAL/ENODATA while powered down
        out.append(
            ZoneReading(zone.name, try_read_text(zone / "type") or "?", milli / 1000.0,
                        _passive_trip(zone))
        )  # fmt: skip
    return out


def nvml_thermal(nvml: Any, handle: Any) -> tuple[float | None, tuple[str, ...]]:
    """GPU temperature and active throttle reasons from NVML (None, () on failure)."""
    temp = None
    reasons: list[str] = []
    try:
        temp = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
    except Exception as e:
        log.debug("NVML temperature unavailable: %s", e)
    getter = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    try:
        mask = int(getter(handle)) if getter is not None else 0
        reasons = [name for bit, name in NVML_THROTTLE_BITS.items() if mask & bit]
    except Exception as e:
        log.debug("NVML throttle reasons unavailable: %s", e)
    return temp, tuple(reasons)


def read_thermal(root: Path | str = "/", gpu: NvmlSensor | None = None) -> ThermalStatus:
    """Thermal zones plus (when given) the GPU's NVML temperature and throttling; never
    raises."""
    try:
        zones = read_thermal_zones(root)
    except Exception as e:
        log.debug("thermal zones unreadable: %s", e)
        zones = []
    reasons = [f"{z.type}>={z.passive_trip_c:g}C" for z in zones if z.throttling]
    gpu_c = None
    if gpu is not None:
        gpu_c, nv_reasons = nvml_thermal(gpu.library, gpu.handle)
        reasons += [f"gpu:{r}" for r in nv_reasons]
    temps = [z.celsius for z in zones] + ([gpu_c] if gpu_c is not None else [])
    return ThermalStatus(
        max(temps) if temps else None, bool(reasons), tuple(reasons), tuple(zones), gpu_c
    )
