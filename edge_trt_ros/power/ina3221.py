"""Jetson INA3221 rail monitors read straight from sysfs.

Two kernel drivers exist. The mainline hwmon driver (JetPack 5/6, Orin) exposes
``in<N>_label``, ``in<N>_input`` (bus mV) and ``curr<N>_input`` (mA) and no power file,
so power is mV x mA. The older NVIDIA iio driver (JetPack 4, Nano/Xavier) exposes
``rail_name_<N>`` and ``in_power<N>_input`` (mW). hwmon numbers change between boots,
so rails are always matched by label.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.reading import PowerReading, Scope
from edge_trt_ros.power.sysfs import is_readable, read_int_or_raise, try_read_text, under

log = logging.getLogger("edge_trt_ros.power.ina3221")

#: Rails that measure the whole module input where a board has one.
MODULE_INPUT_RAILS = ("VDD_IN", "POM_5V_IN")

_HWMON_LABEL = re.compile(r"^in(\d+)_label$")
_IIO_LABEL = re.compile(r"^rail_name_(\d+)$")
_PERMISSION_HINT = (
    "run the node as root or as a member of a group given read access by a udev rule, "
    "or start jtop.service (jetson-stats) and let the jtop sensor read it"
)


@dataclass(frozen=True)
class Rail:
    """One labelled INA3221 channel and the files that measure it."""

    label: str
    volt_path: Path | None  # mV
    curr_path: Path | None  # mA
    power_path: Path | None = None  # mW (iio driver only)


@dataclass(frozen=True)
class Ina3221Device:
    """One INA3221 chip as the kernel exposes it."""

    path: Path
    driver: str  # "hwmon" or "iio"
    rails: tuple[Rail, ...]


def _skip_label(label: str) -> bool:
    # "NC" = not connected (AGX Orin's second chip); channel 7 is the shunt-voltage sum.
    upper = label.strip().upper()
    return not upper or upper == "NC" or upper.startswith("NC ") or "SUM OF SHUNT" in upper


def _unique_dirs(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out: list[Path] = []
    for p in paths:
        try:
            real = p.resolve()
        except OSError:
            continue
        if real not in seen and p.is_dir():
            seen.add(real)
            out.append(p)
    return out


def _hwmon_device(path: Path) -> Ina3221Device | None:
    name = try_read_text(path / "name")
    if name is None or "ina3221" not in name:
        return None
    rails = []
    for f in sorted(path.glob("in*_label")):
        m = _HWMON_LABEL.match(f.name)
        label = try_read_text(f) if m else None
        if not m or label is None or _skip_label(label):
            continue
        n = m.group(1)
        volt, curr = path / f"in{n}_input", path / f"curr{n}_input"
        if volt.exists() and curr.exists():
            rails.append(Rail(label, volt, curr))
    return Ina3221Device(path, "hwmon", tuple(rails))


def _iio_device(path: Path) -> Ina3221Device | None:
    labels = sorted(path.glob("rail_name_*"))
    if not labels:
        return None
    name = try_read_text(path / "name")
    if name is not None and "ina3221" not in name:
        return None
    rails = []
    for f in labels:
        m = _IIO_LABEL.match(f.name)
        label = try_read_text(f) if m else None
        if not m or label is None or _skip_label(label):
            continue
        n = m.group(1)
        power = path / f"in_power{n}_input"
        volt, curr = path / f"in_voltage{n}_input", path / f"in_current{n}_input"
        rails.append(
            Rail(
                label,
                volt if volt.exists() else None,
                curr if curr.exists() else None,
                power if power.exists() else None,
            )
        )
    return Ina3221Device(path, "iio", tuple(rails))


def find_ina3221_devices(root: Path | str = "/") -> list[Ina3221Device]:
    """Every INA3221 the kernel exposes below ``root``, hwmon first."""
    hwmon_dirs = _unique_dirs(
        sorted(under(root, "/sys/class/hwmon").glob("hwmon*"))
        + sorted(under(root, "/sys/bus/i2c/devices").glob("*/hwmon/hwmon*"))
    )
    iio_dirs = _unique_dirs(
        sorted(under(root, "/sys/bus/iio/devices").glob("iio:device*"))
        + sorted(under(root, "/sys/bus/i2c/devices").glob("*/iio:device*"))
    )
    found: list[Ina3221Device] = []
    for d in hwmon_dirs:
        dev = _hwmon_device(d)
        if dev is not None and dev.rails:
            found.append(dev)
    for d in iio_dirs:
        dev = _iio_device(d)
        if dev is not None and dev.rails:
            found.append(dev)
    return found


def read_rail_watts(rail: Rail) -> float:
    """Power of one rail in watts; raises SensorError with the failing file."""
    what = f"INA3221 rail {rail.label}"
    if rail.power_path is not None:
        return read_int_or_raise(rail.power_path, what) / 1000.0
    if rail.volt_path is None or rail.curr_path is None:
        raise SensorError(f"{what}: neither a power file nor a voltage/current pair")
    mv = read_int_or_raise(rail.volt_path, what)
    ma = read_int_or_raise(rail.curr_path, what)
    return mv * ma / 1e6


class Ina3221Sensor:
    """Module power from the INA3221 rails.

    Total = the module-input rail (VDD_IN / POM_5V_IN) where the board has one, otherwise
    the sum of ``sum_rails`` (all labelled rails when not given), scoped ``rail_sum``.
    """

    estimated = False

    def __init__(
        self,
        devices: list[Ina3221Device],
        total_rail: str | None = None,
        sum_rails: list[str] | None = None,
    ) -> None:
        rails: dict[str, Rail] = {}
        for dev in devices:
            for r in dev.rails:
                rails.setdefault(r.label, r)
        if not rails:
            raise SensorError("INA3221: no labelled rails")
        self.rails = rails
        self.driver = devices[0].driver
        self.name = f"ina3221-{self.driver}"
        total = total_rail if total_rail in rails else None
        if total is None:
            total = next((r for r in MODULE_INPUT_RAILS if r in rails), None)
        if total is not None:
            self.total_rails: tuple[str, ...] = (total,)
            self.scope = Scope.MODULE_INPUT
            self.source = f"{self.name}:{total}"
        else:
            wanted = [r for r in (sum_rails or list(rails)) if r in rails] or list(rails)
            self.total_rails = tuple(wanted)
            self.scope = Scope.RAIL_SUM
            self.source = f"{self.name}:sum({'+'.join(wanted)})"

    def read(self) -> PowerReading:
        t = time.monotonic()
        values: dict[str, float] = {}
        for label, rail in self.rails.items():
            try:
                values[label] = read_rail_watts(rail)
            except SensorError:
                if label in self.total_rails:
                    raise
                log.debug("INA3221 rail %s unreadable; omitted from the rail list", label)
        total = sum(values[r] for r in self.total_rails)
        return PowerReading(total, t, self.scope, self.source, False, None, values)

    def energy_j(self) -> float | None:
        return None  # the INA3221 has no energy accumulator

    def close(self) -> None:
        pass


def probe_ina3221(
    root: Path | str = "/",
    total_rail: str | None = None,
    sum_rails: list[str] | None = None,
) -> Ina3221Sensor:
    """Find INA3221 rails and prove they can be read; raises SensorError with a reason."""
    devices = find_ina3221_devices(root)
    if not devices:
        raise SensorError(
            "no INA3221 under /sys/class/hwmon or /sys/bus/i2c/devices (not a Jetson, "
            "or the ina3221 driver is not loaded)"
        )
    driver = devices[0].driver
    devices = [d for d in devices if d.driver == driver]  # never mix two drivers' views
    for dev in devices:
        for rail in dev.rails:
            for p in (rail.power_path, rail.volt_path, rail.curr_path):
                if p is not None and p.exists() and not is_readable(p):
                    raise SensorError(
                        f"INA3221 {driver} found at {dev.path} but {p.name} is unreadable "
                        f"(Permission denied): {_PERMISSION_HINT}"
                    )
    sensor = Ina3221Sensor(devices, total_rail, sum_rails)
    try:
        sensor.read()
    except SensorError as e:
        raise SensorError(f"{e}: {_PERMISSION_HINT}") from e
    log.info("INA3221 (%s driver) rails %s; total = %s", driver, list(sensor.rails), sensor.source)
    return sensor
