"""Start the package's nodes as processes, as `ros2 run` would (used by the demo and tests),
and stop them the way a robot does (SIGINT from Ctrl-C or ``ros2 launch``, SIGTERM from
systemd or a container runtime)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType

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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM as a stop request: the process ends with status 0 and no traceback.

    Installed before ``rclpy.init``, which chains its own handler to it (rclpy shuts its
    context down, then calls this one). Until :meth:`running` (imports, engine loading,
    configure: seconds on a Jetson) a signal ends the process at once with ``SystemExit(0)``;
    afterwards it only sets :attr:`requested`, and the executor returns because rclpy shut
    the context down, so the node is torn down in order.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._running = False

    def install(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        return self

    def running(self) -> None:
        """From here on a signal only asks the node to stop."""
        self._running = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested.set()
        if not self._running:
            raise SystemExit(0)
