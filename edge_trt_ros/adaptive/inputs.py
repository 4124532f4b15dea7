"""What the controller sees at one decision: plain values, each stamped with its time.

The node fills these from its topics and the runtime (``battery_state``, ``illuminance``,
``temperature``, the frame window, the power meter); a benchmark fills them from a trace.
Times are ``time.monotonic()`` seconds on the same clock as the decision's ``now``; a reading
older than the configuration's ``stale_s`` counts as unknown, so a dead sensor cannot keep an
old "bright" reading alive while the aisle goes dark.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_trt_ros.power.profiles import HardwareProfile
from edge_trt_ros.power.thermal import ThermalStatus

# Throttle thresholds by hardware family when neither the thermal zones (a passive trip
# point) nor the configuration give one. UNSURE: typical values, not datasheet figures:
# Jetson modules start software throttling in the mid 90s C (the exact trip point is in
# the board's device tree, which read_thermal reports as passive_trip_c when readable);
# NVIDIA dGPUs slow down near 90 C.
FAMILY_THROTTLE_C: dict[str, float] = {"jetson": 95.0, "x86": 90.0}
DEFAULT_THROTTLE_C = 90.0


@dataclass(frozen=True)
class LiveWindow:
    """The running variant's figures over the last window (runtime.window + power meter)."""

    variant: str
    start: float  # monotonic time the window began (windows begun before a switch are ignored)
    end: float
    frames: int
    fps: float  # frames served per second
    inference_p50_ms: float = math.nan
    inference_p95_ms: float = math.nan
    workers: int = 1  # engines serving side by side (capacity = workers x 1000 / p50)
    input_fps: float = math.nan  # frames offered by the camera(s) per second
    power_w: float | None = None
    energy_per_frame_mj: float | None = None
    scope: str = ""  # power scope (module_input, gpu_board, system_estimate, ...)
    estimated: bool = True

    @property
    def capacity_fps(self) -> float:
        """Frames/s this variant could serve: from the inference latency when known (the
        camera may offer fewer frames than the engine could take), else what it served."""
        if math.isfinite(self.inference_p50_ms) and self.inference_p50_ms > 0:
            return max(self.fps, self.workers * 1000.0 / self.inference_p50_ms)
        return self.fps


@dataclass(frozen=True)
class Thermal:
    """Hottest temperature, whether the device throttles now, and where it starts to."""

    celsius: float | None
    throttling: bool
    throttle_c: float
    t: float
    throttle_source: str = ""  # "passive trip point", "configured", "profile family ..."


@dataclass(frozen=True)
class Battery:
    percentage: float  # 0..100 (sensor_msgs/BatteryState.percentage is 0..1: multiply)
    charging: bool
    t: float


@dataclass(frozen=True)
class Light:
    lux: float
    t: float


@dataclass(frozen=True)
class Inputs:
    """Everything one decision is made from (any part may be missing)."""

    window: LiveWindow | None = None
    thermal: Thermal | None = None
    battery: Battery | None = None
    light: Light | None = None
    input_fps: float | None = None  # camera rate when known without a window
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # for the audit only

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


def throttle_threshold(profile: HardwareProfile | None = None,
                       status: ThermalStatus | None = None,
                       configured: float | None = None) -> tuple[float, str]:
    """(degrees C where throttling starts, where that figure came from).

    Order: an explicit setting; the lowest passive trip point the thermal zones report
    (the device's own figure); the hardware profile family's typical value.
    """
    if configured is not None and configured > 0:
        return float(configured), "configured"
    trips = [z.passive_trip_c for z in (status.zones if status else ())
             if z.passive_trip_c is not None]
    if trips:
        return float(min(trips)), "lowest passive trip point of the thermal zones"
    if profile is not None and profile.family in FAMILY_THROTTLE_C:
        return FAMILY_THROTTLE_C[profile.family], (
            f"typical for the {profile.family} family ({profile.name}; not measured)")
    return DEFAULT_THROTTLE_C, "default (no trip point, no hardware profile)"


def thermal_input(status: ThermalStatus, t: float, profile: HardwareProfile | None = None,
                  configured: float | None = None) -> Thermal:
    """:class:`Thermal` from what :func:`edge_trt_ros.power.thermal.read_thermal` returns."""
    limit, source = throttle_threshold(profile, status, configured)
    return Thermal(status.max_celsius, status.throttling, limit, t, source)
