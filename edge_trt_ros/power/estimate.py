"""Last-resort power model: idle + utilisation x (TDP - idle), always flagged estimated.

It keeps the efficiency figures flowing on machines without sensors (CI, a dev laptop,
a VM), but it only ranks variants by how busy they keep the processor; never report it
as a measurement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_trt_ros.power.profiles import HardwareProfile
from edge_trt_ros.power.reading import PowerReading, Scope
from edge_trt_ros.power.sysfs import try_read_text, under

log = logging.getLogger("edge_trt_ros.power.estimate")


def estimate_watts(idle_w: float, tdp_w: float, utilisation: float) -> float:
    """The linear model; utilisation is clamped to 0..1."""
    u = min(max(utilisation, 0.0), 1.0)
    return idle_w + u * (tdp_w - idle_w)


class CpuUtilisation:
    """Busy fraction of all CPUs since the previous call, from ``/proc/stat``."""

    def __init__(self, root: Path | str = "/") -> None:
        self._path = under(root, "/proc/stat")
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = self._sample()
        self._value = 0.0

    def _sample(self) -> tuple[int, int] | None:
        text = try_read_text(self._path)
        if not text or not text.startswith("cpu "):
            return None
        fields = [int(x) for x in text.splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle  # guest time is already in user/nice

    def __call__(self) -> float:
        with self._lock:
            now = self._sample()
            if now is None or self._last is None:
                return self._value
            total, idle = now[0] - self._last[0], now[1] - self._last[1]
            if total > 0:
                self._value = 1.0 - idle / total
                self._last = now
            return self._value


class EstimatedSensor:
    """Power estimated from the hardware profile and a utilisation probe."""

    name = "estimate"
    scope = Scope.SYSTEM_ESTIMATE
    estimated = True

    def __init__(
        self,
        profile: HardwareProfile,
        utilisation: Callable[[], float] | None = None,
        power_mode: str | None = None,
        utilisation_name: str = "CPU",
    ) -> None:
        self.profile = profile
        self.mode = profile.power_mode(power_mode)
        self._util = utilisation if utilisation is not None else CpuUtilisation()
        self.source = (
            f"estimate:{profile.name}:{self.mode.name} "
            f"(idle {profile.idle_watts:g} W + {utilisation_name} util x "
            f"({self.mode.watts:g} - {profile.idle_watts:g}) W)"
        )

    def read(self) -> PowerReading:
        t = time.monotonic()
        try:
            u = float(self._util())
        except Exception as e:  # never let the last resort fail
            log.debug("utilisation probe failed (%s); assuming idle", e)
            u = 0.0
        w = estimate_watts(self.profile.idle_watts, self.mode.watts, u)
        return PowerReading(w, t, self.scope, self.source, True, None, {"utilisation": u})

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        pass
