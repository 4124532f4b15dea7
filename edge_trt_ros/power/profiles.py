"""Hardware profiles (``config/hardware/*.yaml``) and auto-detection of the one we run on.

The profile supplies what cannot be measured at start-up: memory bandwidth (which picks
the default fusion profile), power modes/TDP and idle watts (the estimate), DLA cores,
and the INA3221 rail names.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_trt_ros.choices import FUSION_PROFILES
from edge_trt_ros.power.sysfs import try_read_text, under

log = logging.getLogger("edge_trt_ros.power.profiles")

ENV_DIR = "EDGE_TRT_HARDWARE_DIR"


@dataclass(frozen=True)
class PowerMode:
    """One nvpmodel mode (or a dGPU/CPU power limit) and its power budget."""

    name: str
    watts: float
    id: int | None = None


@dataclass(frozen=True)
class HardwareProfile:
    """Static facts about one class of device."""

    name: str
    display_name: str
    family: str
    memory_bandwidth_gbps: float
    power_modes: tuple[PowerMode, ...]
    default_power_mode: str
    idle_watts: float
    dla_cores: int
    default_fusion_profile: str
    ina3221_total_rail: str | None = None
    ina3221_sum_rails: tuple[str, ...] = ()
    ina3221_rails: tuple[str, ...] = ()
    detect: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def power_mode(self, name: str | None = None) -> PowerMode:
        """The named mode (case-insensitive), else the default mode."""
        wanted = (name or self.default_power_mode).strip().lower()
        for m in self.power_modes:
            if m.name.lower() == wanted or (m.id is not None and str(m.id) == wanted):
                return m
        for m in self.power_modes:
            if m.name.lower() == self.default_power_mode.lower():
                return m
        return self.power_modes[0]

    def tdp_watts(self, mode: str | None = None) -> float:
        """Power budget of a mode (the estimate's upper bound)."""
        return self.power_mode(mode).watts


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def hardware_profiles_dir(explicit: Path | str | None = None) -> Path:
    """Where the profile YAML lives.

    Order: ``explicit``; ``$EDGE_TRT_HARDWARE_DIR``; ``<package_dir>/../config/hardware``
    (source checkout, editable install); ``<package_dir>/config/hardware`` (package data);
    the ament share dir ``share/edge_trt_ros/config/hardware`` (colcon install, via
    ``ament_index_python`` when importable); ``<sys.prefix>/share/edge_trt_ros/...``
    (pip data-files).
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    if os.environ.get(ENV_DIR):
        candidates.append(Path(os.environ[ENV_DIR]))
    pkg = _package_dir()
    candidates += [pkg.parent / "config" / "hardware", pkg / "config" / "hardware"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("edge_trt_ros")) / "config/hardware")
    except Exception as e:  # not importable, AMENT_PREFIX_PATH unset, package unknown
        log.debug("ament share dir not available: %s", e)
    candidates.append(Path(sys.prefix) / "share" / "edge_trt_ros" / "config" / "hardware")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.yaml")):
            return c
    raise FileNotFoundError(
        "no hardware profile directory found; looked in: " + ", ".join(map(str, candidates))
    )


def _profile_from_dict(data: dict[str, Any], path: Path | None) -> HardwareProfile:
    modes = tuple(
        PowerMode(str(m["name"]), float(m["watts"]), m.get("id")) for m in data["power_modes"]
    )
    if not modes:
        raise ValueError(f"{path}: power_modes is empty")
    if not all(math.isfinite(m.watts) and m.watts > 0 for m in modes):
        raise ValueError(f"{path}: every power mode needs a positive, finite watts value")
    ina = data.get("ina3221") or {}
    fusion = str(data["default_fusion_profile"])
    if fusion not in FUSION_PROFILES:
        raise ValueError(f"{path}: default_fusion_profile {fusion!r} not in {FUSION_PROFILES}")
    return HardwareProfile(
        name=str(data["name"]),
        display_name=str(data.get("display_name", data["name"])),
        family=str(data.get("family", "unknown")),
        memory_bandwidth_gbps=float(data["memory_bandwidth_gbps"]),
        power_modes=modes,
        default_power_mode=str(data.get("default_power_mode", modes[0].name)),
        idle_watts=float(data["idle_watts"]),
        dla_cores=int(data.get("dla_cores", 0)),
        default_fusion_profile=fusion,
        ina3221_total_rail=ina.get("total_rail"),
        ina3221_sum_rails=tuple(ina.get("sum_rails") or ()),
        ina3221_rails=tuple(ina.get("rails") or ()),
        detect=dict(data.get("detect") or {}),
        path=path,
    )


def parse_profile(text: str, path: Path | None = None) -> HardwareProfile:
    """One profile from YAML text (``yaml.safe_load``: plain data only, never a Python
    object); raises ValueError naming the file and what is wrong with it."""
    where = path or "hardware profile"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of profile fields, got "
                         f"{type(data).__name__}")
    try:
        profile = _profile_from_dict(data, path)
    except KeyError as exc:
        raise ValueError(f"{where}: missing field {exc}") from None
    except (TypeError, ValueError, AttributeError, OverflowError, IndexError) as exc:
        raise ValueError(f"{where}: a field has the wrong type or value ({exc})") from None
    if not (math.isfinite(profile.idle_watts) and profile.idle_watts >= 0
            and math.isfinite(profile.memory_bandwidth_gbps)
            and profile.memory_bandwidth_gbps > 0):
        raise ValueError(f"{where}: idle_watts must be >= 0 and memory_bandwidth_gbps > 0 "
                         "(finite numbers)")
    return profile


def load_profiles(directory: Path | str | None = None) -> dict[str, HardwareProfile]:
    """All profiles by name, from :func:`hardware_profiles_dir`; ValueError names a file
    that is not a valid profile."""
    d = hardware_profiles_dir(directory)
    out: dict[str, HardwareProfile] = {}
    for f in sorted(d.glob("*.yaml")):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: cannot read ({exc})") from None
        profile = parse_profile(text, f)
        out[profile.name] = profile
    return out


@dataclass(frozen=True)
class MachineFacts:
    """What detection looked at, kept so the CLI can show it."""

    dt_model: str | None
    dt_compatible: str | None
    mem_gb: float | None
    nvml_name: str | None
    cpu_model: str | None


def _read_dt(root: Path | str, leaf: str) -> str | None:
    for base in ("/proc/device-tree", "/sys/firmware/devicetree/base"):
        text = try_read_text(under(root, f"{base}/{leaf}"))
        if text:
            return text.replace("\x00", " ")
    return None


def _mem_gb(root: Path | str) -> float | None:
    text = try_read_text(under(root, "/proc/meminfo")) or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return None


def _cpu_model(root: Path | str) -> str | None:
    text = try_read_text(under(root, "/proc/cpuinfo"))
    if text is None:
        return None
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def gather_facts(
    root: Path | str = "/", nvml_name: Callable[[], str | None] | None = None
) -> MachineFacts:
    """Read the device tree, meminfo, NVML device name and cpuinfo under ``root``."""
    model = _read_dt(root, "model")
    name = None
    if nvml_name is not None:
        try:
            name = nvml_name()
        except Exception as e:
            log.debug("NVML device name unavailable: %s", e)
    return MachineFacts(model, _read_dt(root, "compatible"), _mem_gb(root), name, _cpu_model(root))


def _jetson_score(p: HardwareProfile, facts: MachineFacts) -> int:
    det = p.detect
    mem = facts.mem_gb
    if mem is not None:
        if "min_mem_gb" in det and mem < float(det["min_mem_gb"]):
            return 0
        if "max_mem_gb" in det and mem > float(det["max_mem_gb"]):
            return 0
    compat = facts.dt_compatible or ""
    if any(c in compat for c in det.get("dt_compatible", [])):
        return 2
    model = facts.dt_model or ""
    if any(m in model for m in det.get("dt_model", [])):
        return 1
    return 0


def detect_profile(
    profiles: dict[str, HardwareProfile],
    root: Path | str = "/",
    nvml_name: Callable[[], str | None] | None = None,
) -> tuple[HardwareProfile, str]:
    """Pick the profile for this machine and say why (device tree > NVML > cpuinfo)."""
    facts = gather_facts(root, nvml_name)
    if facts.dt_model or facts.dt_compatible:
        scored = sorted(
            ((_jetson_score(p, facts), p.name) for p in profiles.values() if p.family == "jetson"),
            reverse=True,
        )
        if scored and scored[0][0] > 0:
            p = profiles[scored[0][1]]
            mem = f", MemTotal {facts.mem_gb:.1f} GB" if facts.mem_gb else ""
            return p, f"device tree model {facts.dt_model!r}{mem}"
        if facts.dt_model and "jetson" in facts.dt_model.lower():
            log.warning(
                "Jetson %r matches no hardware profile; set hardware_profile explicitly",
                facts.dt_model,
            )
    if facts.nvml_name and "x86_dgpu" in profiles:
        return profiles["x86_dgpu"], f"NVML device {facts.nvml_name!r}"
    cpu = facts.cpu_model or "no /proc/cpuinfo"
    return profiles["x86_cpu"], f"/proc/cpuinfo ({cpu}); no Jetson device tree, no NVML GPU"


def resolve_profile(
    name: str = "auto",
    root: Path | str = "/",
    directory: Path | str | None = None,
    nvml_name: Callable[[], str | None] | None = None,
) -> tuple[HardwareProfile, str]:
    """The ROS parameter ``hardware_profile``: ``auto`` detects, a name overrides."""
    profiles = load_profiles(directory)
    if name and name != "auto":
        if name not in profiles:
            raise ValueError(
                f"unknown hardware_profile {name!r}; known: auto, {', '.join(sorted(profiles))}"
            )
        return profiles[name], "set explicitly"
    return detect_profile(profiles, root, nvml_name)
