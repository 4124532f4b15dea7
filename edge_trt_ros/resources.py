"""Find shipped files (models, config) the same way from a checkout, pip or colcon install."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "edge_trt_ros"


def share_dirs() -> list[Path]:
    """Candidate share directories, most specific first."""
    candidates = [Path(__file__).resolve().parent.parent]  # a source checkout
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # not a ROS environment, or AMENT_PREFIX_PATH unset
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)  # pip data-files
    return candidates


def find_resource(relative: str) -> Path:
    """First existing ``relative`` path (e.g. ``models/defect_yolo.onnx``) under a share dir."""
    for base in share_dirs():
        path = base / relative
        if path.exists():
            return path
    searched = ", ".join(str(b) for b in share_dirs())
    raise FileNotFoundError(f"{relative} not found (searched {searched})")


DEFAULT_MODEL = "models/defect_yolo.onnx"
