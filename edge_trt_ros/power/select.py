"""Choose power sensors automatically, most specific first, and degrade on failure.

Order: INA3221 sysfs (module input, cheapest and finest) > jtop (same rails through
its root service) > NVML (dGPU board) > RAPL (CPU package) > estimate. Every candidate
that is not usable is listed with the reason, so a field engineer knows what to fix.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.estimate import CpuUtilisation, EstimatedSensor
from edge_trt_ros.power.ina3221 import probe_ina3221
from edge_trt_ros.power.jtop_sensor import probe_jtop
from edge_trt_ros.power.nvml import NvmlSensor, probe_nvml
from edge_trt_ros.power.profiles import HardwareProfile, resolve_profile
from edge_trt_ros.power.rapl import probe_rapl
from edge_trt_ros.power.reading import PowerReading, PowerSensor, Scope
from edge_trt_ros.power.sysfs import read_int, under

log = logging.getLogger("edge_trt_ros.power.select")

#: Where Jetson kernels expose GPU load (0..1000), newest layout first.
JETSON_GPU_LOAD = (
    "/sys/devices/platform/bus@0/17000000.gpu/load",
    "/sys/devices/platform/17000000.ga10b/load",
    "/sys/devices/platform/gpu.0/load",
    "/sys/devices/gpu.0/load",
    "/sys/devices/17000000.gv11b/load",
)

Probe = Callable[[], PowerSensor]


def close_all(sensors: list[PowerSensor]) -> None:
    """Close every sensor; one that fails to close must not keep the others open."""
    for s in sensors:
        try:
            s.close()
        except Exception as e:
            log.debug("closing %s failed: %s", s.name, e)


@dataclass
class Detection:
    """Usable sensors (best first, estimate last) and why each other one was skipped."""

    profile: HardwareProfile
    profile_reason: str
    sensors: list[PowerSensor]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def close(self) -> None:
        close_all(self.sensors)


def _jetson_gpu_load(root: Path | str) -> Callable[[], float] | None:
    for p in JETSON_GPU_LOAD:
        path = under(root, p)
        if path.is_file():
            try:
                read_int(path)
            except (OSError, ValueError):
                continue
            return lambda: read_int(path) / 1000.0
    return None


def _utilisation_probe(
    profile: HardwareProfile, root: Path | str, sensors: list[PowerSensor]
) -> tuple[Callable[[], float], str]:
    gpu = _jetson_gpu_load(root) if profile.family == "jetson" else None
    if gpu is not None:
        return gpu, "GPU"
    nvml = next((s for s in sensors if isinstance(s, NvmlSensor)), None)
    if nvml is not None:
        return nvml.utilisation, "GPU"
    return CpuUtilisation(root), "CPU"


def default_probes(
    profile: HardwareProfile,
    root: Path | str = "/",
    use_jtop: bool = True,
    use_nvml: bool = True,
    nvml_index: int = 0,
    jtop_factory: Callable[[], Any] | None = None,
    nvml_module: Any | None = None,
) -> list[tuple[str, Probe]]:
    """The standard candidates in precedence order (the estimate is added separately)."""

    def ina() -> PowerSensor:
        return probe_ina3221(
            root, profile.ina3221_total_rail, list(profile.ina3221_sum_rails) or None
        )

    def jtop() -> PowerSensor:
        if not use_jtop:
            raise SensorError("disabled")
        return probe_jtop(jtop_factory)

    def nvml() -> PowerSensor:
        if not use_nvml:
            raise SensorError("disabled")
        return probe_nvml(nvml_index, nvml_module)

    def rapl() -> PowerSensor:
        return probe_rapl(root)

    return [("ina3221", ina), ("jtop", jtop), ("nvml", nvml), ("rapl", rapl)]


def detect_sensors(
    profile: HardwareProfile,
    root: Path | str = "/",
    probes: list[tuple[str, Probe]] | None = None,
    power_mode: str | None = None,
    **probe_options: Any,
) -> Detection:
    """Try every candidate; never raises. The estimate is always last and always there."""
    candidates = probes if probes is not None else default_probes(profile, root, **probe_options)
    sensors: list[PowerSensor] = []
    skipped: list[tuple[str, str]] = []
    for name, probe in candidates:
        try:
            sensors.append(probe())
        except SensorError as e:
            skipped.append((name, str(e)))
        except Exception as e:  # a driver library misbehaving must not stop the node
            skipped.append((name, f"unexpected {type(e).__name__}: {e}"))
    for name, reason in skipped:
        log.info("power sensor %s skipped: %s", name, reason)
    util, util_name = _utilisation_probe(profile, root, sensors)
    sensors.append(EstimatedSensor(profile, util, power_mode, util_name))
    return Detection(profile, "", sensors, skipped)


RETRY_S = 5.0  # how often a failed, more specific sensor is tried again
MAX_EVENTS = 64  # fallback/recovery events kept (a flapping sensor must not grow memory)
RECOVERED = "recovered"  # the reason of an event that went back to a better sensor


class FallbackSensor:
    """A chain of sensors that never raises: on failure it logs why and uses the next, and
    every ``retry_s`` it tries the better ones again (a driver reloaded, a counter back
    after a hot-plug), so a robot does not run on an estimate for the rest of a shift."""

    def __init__(self, sensors: list[PowerSensor], retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not sensors:
            raise ValueError("FallbackSensor needs at least one sensor")
        self._sensors = list(sensors)
        self._i = 0
        self._lock = threading.Lock()
        self._retry_s = retry_s
        self._clock = clock
        self._next_retry = math.inf
        # (t, from, to, reason); reason RECOVERED when it went back to a better sensor
        self.events: deque[tuple[float, str, str, str]] = deque(maxlen=MAX_EVENTS)
        self.last_failure: tuple[float, str, str] | None = None  # (t, sensor, reason)

    @property
    def current(self) -> PowerSensor:
        return self._sensors[self._i]

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def scope(self) -> str:
        return self.current.scope

    @property
    def estimated(self) -> bool:
        return self.current.estimated

    @property
    def source(self) -> str:
        return str(getattr(self.current, "source", self.current.name))

    @property
    def retry_s(self) -> float:
        return self._retry_s

    @property
    def degraded(self) -> bool:
        """True while a more specific sensor than the current one has failed."""
        return self._i > 0 and self.last_failure is not None

    def _degrade(self, reason: str) -> bool:
        failed = self.current.name
        now = self._clock()
        self.last_failure = (now, failed, reason)
        if self._i + 1 >= len(self._sensors):
            return False
        self._i += 1
        self._next_retry = now + self._retry_s
        self.events.append((now, failed, self.current.name, reason))
        log.warning(
            "power sensor %s failed (%s); falling back to %s. Efficiency figures now come "
            "from %s%s",
            failed,
            reason,
            self.current.name,
            self.source,
            " and are ESTIMATED" if self.current.estimated else "",
        )
        return True

    def _retry(self) -> PowerReading | None:
        """Try the sensors before the current one, best first; the first that reads again
        becomes current (a reading from it), else None and the next try is later."""
        now = self._clock()
        if now < self._next_retry:
            return None
        self._next_retry = now + self._retry_s
        for i in range(self._i):
            sensor = self._sensors[i]
            try:
                reading = sensor.read()
            except Exception:
                continue
            previous = self.current.name
            self._i = i
            self.events.append((now, previous, sensor.name, RECOVERED))
            log.warning("power sensor %s reads again; efficiency figures come from %s again "
                        "(measured, no longer from %s)", sensor.name, self.source, previous)
            if i == 0:
                self.last_failure = None
            return reading
        return None

    def read(self) -> PowerReading:
        with self._lock:
            if self._i > 0:
                recovered = self._retry()
                if recovered is not None:
                    return recovered
            while True:
                try:
                    return self.current.read()
                except Exception as e:
                    if not self._degrade(str(e)):
                        log.error("last power sensor %s failed: %s", self.current.name, e)
                        return PowerReading(
                            math.nan, time.monotonic(), Scope.SYSTEM_ESTIMATE, "none", True
                        )

    def energy_j(self) -> float | None:
        try:
            return self.current.energy_j()
        except Exception:
            return None

    def close(self) -> None:
        close_all(self._sensors)


def open_power_sensor(
    hardware_profile: str = "auto",
    root: Path | str = "/",
    power_mode: str | None = None,
    **probe_options: Any,
) -> tuple[FallbackSensor, Detection]:
    """One call for the node: resolve the profile, detect sensors, wrap them in a chain.

    ``hardware_profile`` is the ROS parameter (``auto`` or a profile name); an unknown
    name raises ValueError at start-up, never later.
    """
    from edge_trt_ros.power.nvml import nvml_device_name

    use_nvml = probe_options.get("use_nvml", True)
    nvml_module = probe_options.get("nvml_module")
    profile, why = resolve_profile(
        hardware_profile,
        root,
        nvml_name=(lambda: nvml_device_name(0, nvml_module)) if use_nvml else None,
    )
    detection = detect_sensors(profile, root, power_mode=power_mode, **probe_options)
    detection.profile_reason = why
    log.info(
        "hardware profile %s (%s); power from %s",
        profile.name,
        why,
        getattr(detection.sensors[0], "source", detection.sensors[0].name),
    )
    return FallbackSensor(detection.sensors), detection
