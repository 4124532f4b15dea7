"""The value sets the whole package shares, spelt once: precisions, fusion profiles, backends.

At the bottom layer so the power profiles, the engines, the CLI and the ROS parameters all
validate against the same tuples. (Output layouts live with their decoders in
:mod:`edge_trt_ros.vision.decode`.)
"""

from __future__ import annotations

AUTO = "auto"  # resolved per machine: the backend that runs here, the profile measured best

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
FUSION_PROFILES: tuple[str, ...] = ("max", "balanced", "conservative", "none")
BACKENDS: tuple[str, ...] = ("onnxruntime", "tensorrt")
