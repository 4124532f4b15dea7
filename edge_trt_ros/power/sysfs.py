"""Tiny helpers for reading sysfs/procfs under an injectable root (tests use fake trees)."""

from __future__ import annotations

import os
from pathlib import Path

from edge_trt_ros.errors import SensorError

# Where the power and thermal code looks for /sys and /proc when no root is passed: "/" on a
# robot; a container that mounts the host's trees elsewhere, or a fixture tree standing in
# for a machine with sensors (tools/fake_rapl.py), sets this.
ROOT_ENV = "EDGE_TRT_SYSFS_ROOT"


def system_root() -> str:
    """The filesystem root of the sensors: ``$EDGE_TRT_SYSFS_ROOT``, else ``/``."""
    return os.environ.get(ROOT_ENV) or "/"


def under(root: Path | str, path: str) -> Path:
    """Map an absolute system path such as ``/sys/class/hwmon`` below ``root``."""
    return Path(root) / path.lstrip("/")


def read_text(path: Path) -> str:
    """Read a small sysfs file, stripped of whitespace and trailing NULs (device tree)."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace").strip().strip("\x00").strip()


def read_int(path: Path) -> int:
    """Read an integer attribute; some drivers append units ("32760 ma")."""
    text = read_text(path)
    return int(text.split()[0])


def try_read_text(path: Path) -> str | None:
    """Read a file or return None when it is absent or unreadable."""
    try:
        return read_text(path)
    except (OSError, ValueError):
        return None


def read_int_or_raise(path: Path, what: str) -> int:
    """Read an integer, turning OS errors into an actionable :class:`SensorError`."""
    try:
        return read_int(path)
    except FileNotFoundError as e:
        raise SensorError(f"{what}: {path} vanished ({e.strerror})") from e
    except PermissionError as e:
        raise SensorError(f"{what}: {path} unreadable (Permission denied)") from e
    except (OSError, ValueError, IndexError) as e:
        raise SensorError(f"{what}: cannot read {path}: {e}") from e


def is_readable(path: Path) -> bool:
    """True when the file exists and this process may read it."""
    return path.is_file() and os.access(path, os.R_OK)
