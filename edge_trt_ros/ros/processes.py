"""Start the package's nodes as processes, as `ros2 run` would (used by the demo and tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ament_index_python.packages import get_package_prefix, get_package_share_directory

from edge_trt_ros.ros.launch_args import (
    DEFAULT_BACKEND,
    EXECUTABLE,
    PACKAGE,
    PARAMS_FILE,
    detector_ros_args,
)


def executable(name: str) -> str:
    """Path of an installed executable of this package (lib/edge_trt_ros/<name>)."""
    path = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is not installed: run scripts/bootstrap.sh "
                                "(on a robot: colcon build)")
    return str(path)


def default_params_file() -> str:
    return str(Path(get_package_share_directory(PACKAGE)) / PARAMS_FILE)


def start_detector_command(
    camera: str,
    extra_params: dict[str, str] | None = None,
    params_file: str | None = None,
    backend: str = DEFAULT_BACKEND,
) -> list[str]:
    """The detector's command line exactly as detector.launch.py would run it."""
    args = detector_ros_args(params_file or default_params_file(), camera, backend, extra_params)
    return [executable(EXECUTABLE), *args]


def start_detector(
    camera: str,
    params_file: str | None = None,
    backend: str = DEFAULT_BACKEND,
    extra_params: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.Popen[bytes]:
    """The detector exactly as detector.launch.py starts it, without `ros2 launch`."""
    command = start_detector_command(camera, extra_params, params_file, backend)
    return subprocess.Popen(command, **popen)  # type: ignore[call-overload]


def start_camera(
    topic: str, params: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen[bytes]:
    args = ["--ros-args", "-r", f"image:={topic}"]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={value}"]
    return subprocess.Popen([executable("synthetic_camera"), *args], **popen)  # type: ignore[call-overload]
