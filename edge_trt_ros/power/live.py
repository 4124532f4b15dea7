"""Live power telemetry for a running detector: one object the node starts, feeds, reads.

Sensor selection, the rolling energy window, background sampling and temperature behind
four calls, so the ROS node only wires them (and a benchmark can use the same thing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from edge_trt_ros.power.energy import EfficiencySnapshot, EnergyMeter
from edge_trt_ros.power.nvml import NvmlSensor
from edge_trt_ros.power.sampler import PowerSampler
from edge_trt_ros.power.select import Detection, FallbackSensor, open_power_sensor
from edge_trt_ros.power.sysfs import system_root
from edge_trt_ros.power.thermal import ThermalStatus, read_thermal

log = logging.getLogger("edge_trt_ros.power.live")


@dataclass(frozen=True)
class LiveFigures:
    efficiency: EfficiencySnapshot
    thermal: ThermalStatus
    sensor: str  # name of the sensor in use now (ina3221-hwmon, nvml, estimate, ...)


IDLE_PERIOD_S = 1.0


class LivePower:
    """Rolling-window energy per frame, FPS/W and TOPS/W of the frames counted here."""

    def __init__(
        self,
        hardware_profile: str = "auto",
        macs: int | None = None,
        window_s: float = 10.0,
        period_s: float = 0.05,
        root: str | None = None,
    ) -> None:
        root = root or system_root()
        self.sensor: FallbackSensor
        self.detection: Detection
        self.sensor, self.detection = open_power_sensor(hardware_profile, root)
        self.meter = EnergyMeter(self.sensor, macs=macs, window_s=window_s)
        self._period_s = period_s
        self._root = root
        self._sampler: PowerSampler | None = None
        self._nvml = next((s for s in self.detection.sensors if isinstance(s, NvmlSensor)), None)

    @property
    def profile_name(self) -> str:
        return self.detection.profile.name

    def why_not_measured(self) -> str:
        """Why each more specific sensor was skipped at start or failed since (for an
        'estimated' diagnostic)."""
        reasons = [f"{name}: {reason}" for name, reason in self.detection.skipped]
        failure = self.sensor.last_failure
        if self.sensor.degraded and failure is not None:
            t, name, reason = failure
            reasons.insert(0, f"{name} failed {time.monotonic() - t:.0f} s ago ({reason}); "
                              f"retried every {self.sensor.retry_s:g} s")
        return "; ".join(reasons)

    def start(self) -> None:
        if self._sampler is None:
            self.meter.reset()
            self._sampler = PowerSampler(self.meter, self._period_s).start()

    def set_idle(self, idle: bool) -> None:
        """Sample at IDLE_PERIOD_S while nobody reads the node's outputs (lazy): at 20 Hz the
        sampler alone costs about half a percent of a core, the idle node's largest cost."""
        if self._sampler is not None:
            self._sampler.period_s = IDLE_PERIOD_S if idle else self._period_s

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None

    def add_frame(self) -> None:
        self.meter.add_frames(1)

    def figures(self) -> LiveFigures:
        thermal = read_thermal(self._root, self._nvml)
        return LiveFigures(self.meter.snapshot(), thermal, self.sensor.name)

    def close(self) -> None:
        self.stop()
        self.sensor.close()
