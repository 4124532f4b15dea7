"""Where and how a result was measured, recorded in every benchmark result.

A figure without its machine, software versions, model hash and command cannot be
compared across devices or releases; this is the one place that gathers them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_trt_ros.engines.registry import capabilities
from edge_trt_ros.files import sha256_file
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


def environment_record(models: dict[str, str | os.PathLike[str]] | None = None,
                       hardware_profile: str = "auto") -> dict[str, Any]:
    """Date, command, git revision, machine, library versions, backends, power sensor and
    hardware profile, and the sha256 of every model file named in ``models``."""
    sensor, detection = open_power_sensor(hardware_profile)
    power = {"sensor": sensor.name, "source": sensor.source, "scope": sensor.scope,
             "estimated": sensor.estimated,
             "skipped": dict(detection.skipped)}
    sensor.close()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_revision": git_revision(),
        "machine": machine() | {"platform": platform.platform()},
        "hardware_profile": {"name": detection.profile.name,
                             "why": detection.profile_reason},
        "power": power,
        "versions": tool_versions(),
        "backends": capabilities().summary(),
        "models": {k: {"path": str(v), "sha256": sha256_file(v)}
                   for k, v in (models or {}).items()},
    }
