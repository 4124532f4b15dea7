"""Where and how a result was measured, recorded in every benchmark result.

A figure without its machine, software versions, model hash and command cannot be
compared across devices or releases; this is the one place that gathers them. Clocks and
power modes decide a device's speed as much as the software does, so they are recorded
wherever the machine lets them be read (cpufreq, nvpmodel, jetson_clocks, NVML); what
cannot be read says why instead of being left out.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_trt_ros.engines.registry import capabilities
from edge_trt_ros.files import sha256_file
from edge_trt_ros.power.nvml import import_pynvml
from edge_trt_ros.power.select import open_power_sensor
from edge_trt_ros.variants.manifest import machine, tool_versions

ROOT = Path(__file__).resolve().parents[2]


def git_revision(root: Path = ROOT) -> str:
    """The checkout's commit (+ "-dirty" with uncommitted changes), or "unknown"."""
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "edge_trt_ros", "models", "bench"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def _run(command: list[str], timeout: float = 5.0) -> str | None:
    """A tool's stdout, or None when it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cpuinfo_mhz() -> list[float]:
    """The kernel's "cpu MHz" per CPU (on a VM: what the hypervisor reports)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    return [float(line.split(":", 1)[1]) for line in lines if line.startswith("cpu MHz")]


def cpu_clocks(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, Any]:
    """Governor and current/max frequency per CPU (cpufreq), or why they are unreadable."""
    cpus = sorted(root.glob("cpu[0-9]*/cpufreq"), key=lambda p: int(p.parent.name[3:]))
    if not cpus:
        return {"readable": False, "why": f"no cpufreq under {root} (a VM or a kernel "
                "without cpufreq: clocks are the host's)", "cpuinfo_mhz": _cpuinfo_mhz()}

    def read(path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    per_cpu = {}
    for d in cpus:
        cur, top = read(d / "scaling_cur_freq"), read(d / "cpuinfo_max_freq")
        per_cpu[d.parent.name] = {
            "governor": read(d / "scaling_governor"),
            "cur_mhz": int(cur) // 1000 if cur and cur.isdigit() else None,
            "max_mhz": int(top) // 1000 if top and top.isdigit() else None,
        }
    return {"readable": True, "cpus": per_cpu}


def jetson_power_mode() -> dict[str, Any]:
    """nvpmodel's mode and ``jetson_clocks --show`` (Jetson only; root may be needed)."""
    mode = _run(["nvpmodel", "-q"])
    clocks = _run(["jetson_clocks", "--show"])
    if mode is None and clocks is None:
        return {"readable": False, "why": "nvpmodel / jetson_clocks not found or not "
                "permitted (not a Jetson, or not root)"}
    return {"readable": True, "nvpmodel": mode, "jetson_clocks": clocks}


def nvml_clocks() -> dict[str, Any]:
    """Clocks, power limit and performance state of every NVIDIA GPU, through NVML."""
    try:
        nvml = import_pynvml()
        nvml.nvmlInit()
    except Exception as exc:  # no library, no driver, no GPU: say which
        return {"readable": False, "why": f"NVML unavailable ({exc})"}
    gpus = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)

            def get(fn: str, *args: Any, h: Any = h) -> Any:
                try:
                    return getattr(nvml, fn)(h, *args)
                except Exception:
                    return None

            sm, mem = nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM
            name = get("nvmlDeviceGetName")
            limit = get("nvmlDeviceGetEnforcedPowerLimit")
            gpus.append({
                "index": i, "name": name.decode() if isinstance(name, bytes) else name,
                "sm_mhz": get("nvmlDeviceGetClockInfo", sm),
                "mem_mhz": get("nvmlDeviceGetClockInfo", mem),
                "app_sm_mhz": get("nvmlDeviceGetApplicationsClock", sm),
                "max_sm_mhz": get("nvmlDeviceGetMaxClockInfo", sm),
                "max_mem_mhz": get("nvmlDeviceGetMaxClockInfo", mem),
                "power_limit_w": limit / 1000 if limit is not None else None,
                "pstate": get("nvmlDeviceGetPerformanceState"),
                "persistence_mode": get("nvmlDeviceGetPersistenceMode"),
            })
        driver = nvml.nvmlSystemGetDriverVersion()
    finally:
        nvml.nvmlShutdown()
    return {"readable": True, "driver": driver.decode() if isinstance(driver, bytes)
            else driver, "gpus": gpus}


def clocks_record() -> dict[str, Any]:
    """Everything readable about the speed the machine was set to run at."""
    return {"cpu": cpu_clocks(), "jetson": jetson_power_mode(), "nvml": nvml_clocks()}


def environment_record(models: dict[str, str | os.PathLike[str]] | None = None,
                       hardware_profile: str = "auto") -> dict[str, Any]:
    """Date, command, git revision, machine, library versions, backends, power sensor and
    hardware profile, and the sha256 of every model file named in ``models``."""
    sensor, detection = open_power_sensor(hardware_profile)
    power = {"sensor": sensor.name, "source": sensor.source, "scope": sensor.scope,
             "estimated": sensor.estimated,
             "skipped": dict(detection.skipped)}
    sensor.close()
    profile = detection.profile
    mode = profile.power_mode()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_revision": git_revision(),
        "machine": machine() | {"platform": platform.platform()},
        "hardware_profile": {"name": profile.name,
                             "why": detection.profile_reason,
                             # what the power estimate assumes (not read from the device)
                             "estimate_power_mode": mode.name,
                             "estimate_power_mode_watts": mode.watts,
                             "estimate_idle_watts": profile.idle_watts},
        "clocks": clocks_record(),
        "power": power,
        "versions": tool_versions(),
        "backends": capabilities().summary(),
        "models": {k: {"path": str(v), "sha256": sha256_file(v)}
                   for k, v in (models or {}).items()},
    }
