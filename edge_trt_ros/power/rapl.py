"""x86 CPU package energy through Linux powercap/RAPL.

``/sys/class/powercap/intel-rapl:<N>/energy_uj`` is a cumulative package counter (also on
AMD Zen with the same driver) that wraps at ``max_energy_range_uj``; it must be read at
least once per wrap period (minutes at full load), which the background sampler does.
Since Linux 5.10 ``energy_uj`` is root-only (CVE-2020-8694).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.reading import PowerReading, Scope
from edge_trt_ros.power.sysfs import is_readable, read_int_or_raise, try_read_text, under

log = logging.getLogger("edge_trt_ros.power.rapl")

_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")  # not subzones (:0:0) nor the mmio twin


def wrap_delta(previous_uj: int, current_uj: int, max_range_uj: int) -> int:
    """Energy between two reads of a counter that wraps at ``max_range_uj``."""
    delta = current_uj - previous_uj
    if delta < 0:
        delta += max_range_uj
    return delta


@dataclass
class _Zone:
    name: str
    energy_path: Path
    max_range_uj: int
    last_uj: int
    total_uj: int = 0


class RaplSensor:
    """Sum of all package zones, as a wrap-corrected cumulative counter."""

    name = "rapl"
    scope = Scope.CPU_PACKAGE
    estimated = False

    def __init__(self, zones: list[_Zone]) -> None:
        self._zones = zones
        self._lock = threading.Lock()
        self.source = "rapl:" + "+".join(z.name for z in zones)
        self._last_t = time.monotonic()
        self._last_total = 0.0
        self._last_watts = 0.0
        self._rebase = False  # a read failed: the counter's next value is a new baseline

    def _update(self) -> float:
        with self._lock:
            try:
                values = [read_int_or_raise(z.energy_path, f"RAPL {z.name}")
                          for z in self._zones]
            except Exception:
                # What the counter did while unreadable is unknown (a driver reload restarts
                # it): the next good read starts a new baseline instead of a wrap-sized jump.
                self._rebase = True
                raise
            for z, now in zip(self._zones, values, strict=True):
                if not self._rebase:
                    z.total_uj += wrap_delta(z.last_uj, now, z.max_range_uj)
                z.last_uj = now
            if self._rebase:
                self._rebase = False
                self._last_t = time.monotonic()
                self._last_total = sum(z.total_uj for z in self._zones) / 1e6
            return sum(z.total_uj for z in self._zones) / 1e6

    def read(self) -> PowerReading:
        t = time.monotonic()
        energy = self._update()
        dt = t - self._last_t
        if dt > 1e-3:
            self._last_watts = (energy - self._last_total) / dt
            self._last_t, self._last_total = t, energy
        return PowerReading(self._last_watts, t, self.scope, self.source, False, energy)

    def energy_j(self) -> float | None:
        return self._update()

    def close(self) -> None:
        pass


def probe_rapl(root: Path | str = "/") -> RaplSensor:
    """Find readable RAPL package zones; raises SensorError saying why not."""
    base = under(root, "/sys/class/powercap")
    if not base.is_dir():
        raise SensorError("no /sys/class/powercap (kernel without powercap, a VM, or not x86)")
    zones: list[_Zone] = []
    for d in sorted(base.iterdir()):
        if not _PACKAGE_ZONE.match(d.name):
            continue
        energy = d / "energy_uj"
        if not energy.exists():
            continue
        if not is_readable(energy):
            raise SensorError(
                f"RAPL {energy} unreadable (Permission denied; root-only since Linux 5.10): "
                "run as root or add a udev/tmpfiles rule granting read access"
            )
        name = try_read_text(d / "name") or d.name
        max_range = read_int_or_raise(d / "max_energy_range_uj", f"RAPL {name}")
        first = read_int_or_raise(energy, f"RAPL {name}")
        zones.append(_Zone(f"{d.name}({name})", energy, max_range, first))
    if not zones:
        raise SensorError("/sys/class/powercap has no intel-rapl package zone")
    log.info("RAPL package zones: %s", [z.name for z in zones])
    return RaplSensor(zones)
