"""The detector's parameters: one table with descriptors, ranges, choices and validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "ONNX detector; empty = the shipped defect model", True),
    ParamSpec("backend", "onnxruntime", "inference backend", True,
              choices=("auto", "onnxruntime", "tensorrt")),
    ParamSpec("precision", "fp32", "engine precision", choices=("fp32", "fp16", "int8")),
    ParamSpec("fusion_profile", "max", "layer fusion profile",
              choices=("max", "balanced", "conservative", "none", "auto")),
    ParamSpec("confidence_threshold", 0.25, "minimum score of a published detection",
              bounds=(0.0, 1.0)),
    ParamSpec("nms_iou_threshold", 0.45, "IoU above which NMS suppresses the weaker box",
              bounds=(0.0, 1.0)),
    ParamSpec("max_detections", 100, "most detections published per frame", bounds=(1, 1000)),
    ParamSpec("class_names", [""], "override the model's class names ([''] = from the model)",
              True),
    ParamSpec("output_layout", "auto", "model output layout", True,
              choices=("auto", "yolov8", "yolov5", "end2end", "efficientnms")),
    ParamSpec("intra_op_threads", 0, "CPU inference threads (0 = one per core)", True,
              bounds=(0, 256)),
    ParamSpec("input_qos.reliability", "best_effort", "image subscription reliability", True,
              choices=("best_effort", "reliable")),
    ParamSpec("input_qos.depth", 1, "image subscription queue depth", True, bounds=(1, 100)),
    ParamSpec("diagnostics_period_s", 1.0, "period of ~/efficiency and /diagnostics", True,
              bounds=(0.1, 60.0)),
    ParamSpec("stats_window_s", 5.0, "rolling window of the live fps/latency figures", True,
              bounds=(1.0, 600.0)),
    ParamSpec("hardware_profile", "auto",
              "power/thermal hardware profile: auto or a config/hardware name (orin_nx_16gb, ...)",
              True),
    ParamSpec("autostart", True, "configure and activate on start (no lifecycle manager)", True),
)
SPECS = {s.name: s for s in PARAMS}


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    d = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.bounds is not None:
        lo, hi = spec.bounds
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


def declare_all(node: Node) -> None:
    for spec in PARAMS:
        node.declare_parameter(spec.name, spec.default, _descriptor(spec))


def check_choices(params: list[Parameter]) -> SetParametersResult:
    """Reject a value outside a parameter's choices (ranges and read-only rclpy enforces)."""
    for p in params:
        spec = SPECS.get(p.name)
        if spec and spec.choices and p.value not in spec.choices:
            return SetParametersResult(
                successful=False,
                reason=f"{p.name}={p.value!r} is not one of {', '.join(spec.choices)}",
            )
    return SetParametersResult(successful=True)
