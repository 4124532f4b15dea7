"""How the detector is started: the demo and the tests build its command line here, and
launch/detector.launch.py spells the same names as literals (so it loads without importing
the package); test_launch.py holds the two equal, so `ros2 launch` and a
plain process start run the same node."""

from __future__ import annotations

from collections.abc import Sequence

PACKAGE = "edge_trt_ros"
EXECUTABLE = "detector_node"
NODE_NAME = "detector"
DEFAULT_CAMERA = "/camera/image_raw"
DEFAULT_CAMERAS = ""  # comma-separated topics; empty = the one remapped `image` input
DEFAULT_BACKEND = ""  # empty = what the params file says
PARAMS_FILE = "config/detector.yaml"  # relative to the package share directory


def detector_ros_args(
    params_file: str,
    camera: str = DEFAULT_CAMERA,
    backend: str = DEFAULT_BACKEND,
    extra_params: dict[str, str] | None = None,
    cameras: Sequence[str] = (),
) -> list[str]:
    """``--ros-args`` for the detector: params file, then overrides (``backend`` only when
    given), then remappings; ``cameras`` (several topics) replaces the ``image`` remapping
    with ``image_topics``."""
    args = ["--ros-args", "-r", f"__node:={NODE_NAME}", "--params-file", params_file]
    if backend:
        args += ["-p", f"backend:={backend}"]
    for name, value in (extra_params or {}).items():
        args += ["-p", f"{name}:={value}"]
    if cameras:
        return args + ["-p", f"image_topics:=[{','.join(cameras)}]"]
    return args + ["-r", f"image:={camera}"]
