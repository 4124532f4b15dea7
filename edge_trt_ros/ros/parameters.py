"""The detector's parameters: one table with descriptors, ranges, choices and when they apply.

Three kinds: ``now`` parameters (thresholds, precision, fusion profile, the accuracy guard)
take effect between two frames; ``configure`` parameters (the model, backend, device,
workers, paths, QoS...) are accepted only while the node is unconfigured and apply at the
next configure (deactivate + cleanup, set, configure); ``autostart`` is read-only. rclpy's
own read-only flag is kept for ``autostart`` alone, because it refuses a change in every
state, which would make "cleanup, change, configure" impossible.

Values given at start (a params file, ``-p``) are checked against the table before rclpy
sees them (:func:`check_overrides`): an integer for a floating-point parameter
(``confidence_threshold: 1``) is taken as 1.0, a whole float for an integer one as that
integer; a value of the wrong type, out of range or not one of the choices stops the node
with one :class:`~edge_trt_ros.errors.ParameterError` naming every bad parameter (the
process then exits non-zero, so a launch file or supervisor sees the failure); a name the
node does not declare (a typo) is logged as a warning with the closest declared name and
otherwise ignored, as ROS does, so a params file shared by several versions still starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
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

from edge_trt_ros.adaptive.config import EFFICIENCY, OBJECTIVES
from edge_trt_ros.choices import AUTO, BACKENDS, FUSION_PROFILES, PRECISIONS
from edge_trt_ros.errors import ParameterError
from edge_trt_ros.runtime.ready import parse_keep_ready
from edge_trt_ros.vision.decode import LAYOUTS

NOW, CONFIGURE, START = "now", "configure", "start"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    applies: str = CONFIGURE
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # why a value is refused, or None


def _keep_ready_refusal(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return f"keep_ready: expected a list of strings, got {value!r}"
    try:
        parse_keep_ready(value)
    except ValueError as exc:
        return str(exc)
    return None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "ONNX detector; empty = the shipped defect model"),
    ParamSpec("backend", AUTO, "inference backend: auto = TensorRT where it imports and a GPU "
              "exists, else ONNX Runtime", choices=(AUTO, *BACKENDS)),
    ParamSpec("device", AUTO, "where the engine runs: auto, cpu or cuda:N"),
    ParamSpec("precision", "fp32", "engine precision; a change switches the engine between two "
              "frames", NOW, choices=PRECISIONS),
    ParamSpec("fusion_profile", "max", "layer fusion profile; a change switches the engine "
              "between two frames", NOW, choices=(*FUSION_PROFILES, AUTO)),
    ParamSpec("max_accuracy_drop", 0.005, "accuracy guard: most mAP@0.5 a variant may lose "
              "against fp32, overall and in every lux bin (0.005 = half a point); "
              "~/switch_engine's force overrides it", NOW, bounds=(0.0, 1.0)),
    ParamSpec("confidence_threshold", 0.25, "minimum score of a published detection", NOW,
              bounds=(0.0, 1.0)),
    ParamSpec("nms_iou_threshold", 0.45, "IoU above which NMS suppresses the weaker box", NOW,
              bounds=(0.0, 1.0)),
    ParamSpec("max_detections", 100, "most detections published per frame", NOW,
              bounds=(1, 1000)),
    ParamSpec("class_names", [""], "override the model's class names ([''] = from the model)"),
    ParamSpec("output_layout", AUTO, "model output layout", choices=(AUTO, *LAYOUTS)),
    ParamSpec("workers", 0, "inference threads, each with its own engine; 0 = auto: one "
              "single-threaded engine per core on a CPU (at most 4), one on a GPU",
              bounds=(0, 16)),
    ParamSpec("keep_ready", [""], "engines kept open beside the active one, so a switch to "
              "them is instant: precision/fusion_profile entries (int8/max, fp16/auto) or "
              "'all'; each costs an open engine's memory ([''] = none)",
              check=_keep_ready_refusal),
    ParamSpec("pin_workers", True, "on a CPU, pin each worker to cores of its own (of those "
              "the process may use; not with one worker or more workers than cores); false = "
              "the kernel places them (e.g. several detectors sharing the same cores)"),
    ParamSpec("intra_op_threads", 0, "CPU threads per engine (0 = all cores for one worker, "
              "cores / workers for several)", bounds=(0, 256)),
    ParamSpec("engine_cache_dir", "", "TensorRT plans and made variants; empty = "
              "~/.cache/edge_trt_ros/engines"),
    ParamSpec("variants_dir", "", "variant files + variants.json of the model; empty = "
              "models/variants for the shipped model, else variants/<model hash> beside the "
              "engine cache"),
    ParamSpec("input_qos.reliability", "best_effort", "image subscription reliability",
              choices=("best_effort", "reliable")),
    ParamSpec("input_qos.depth", 1, "image subscription queue depth", bounds=(1, 100)),
    ParamSpec("diagnostics_period_s", 1.0, "period of ~/efficiency and /diagnostics while "
              "active (every 5 s otherwise)", bounds=(0.1, 60.0)),
    ParamSpec("stats_window_s", 5.0, "rolling window of the live fps/latency/energy figures "
              "and of the problems /diagnostics reports", bounds=(1.0, 600.0)),
    ParamSpec("hardware_profile", AUTO,
              "power/thermal hardware profile: auto or a config/hardware name (orin_nx_16gb, ...)"),
    ParamSpec("adaptive.enabled", False, "let the adaptive controller pick the variant (within "
              "the accuracy guard for the current light, target_fps and power_budget_w)", NOW),
    ParamSpec("adaptive.objective", EFFICIENCY, "what the controller optimises", NOW,
              choices=OBJECTIVES),
    ParamSpec("adaptive.target_fps", 0.0, "frames/s the chosen variant must sustain (0 = keep "
              "up with the camera's measured rate)", NOW, bounds=(0.0, 1000.0)),
    ParamSpec("adaptive.power_budget_w", 0.0, "most watts for the throughput objective (0 = "
              "no budget)", NOW, bounds=(0.0, 10000.0)),
    ParamSpec("adaptive.max_accuracy_drop", 0.005, "the controller's accuracy guard: most "
              "mAP@0.5 lost against fp32 in the current lux bin (overall when the light is "
              "unknown)", NOW, bounds=(0.0, 1.0)),
    ParamSpec("adaptive.min_dwell_s", 60.0, "no automatic switch sooner than this after the "
              "last (a guard violation moves at once)", NOW, bounds=(0.0, 86400.0)),
    ParamSpec("adaptive.audit_log_path", "", "the controller's append-only JSON-lines audit "
              "log; empty = $XDG_STATE_HOME/edge_trt_ros/<node>_audit.jsonl"),
    ParamSpec("image_topics", ["image"], "the cameras: one image topic each, all on one "
              "engine; outputs go under each topic's namespace (/front/image_raw -> "
              "/front/detections, /front/debug_image); the bare default 'image' keeps "
              "detections and ~/debug_image"),
    ParamSpec("image_transports", ["raw"], "per camera (or one for all): raw = sensor_msgs/"
              "Image on the topic, compressed = sensor_msgs/CompressedImage (jpeg/png) on "
              "<topic>/compressed"),
    ParamSpec("batching", True, "several cameras: run their waiting frames as one "
              "inference (an engine with a dynamic batch: a copy of the variant is made once, "
              "in the engine cache); off, or where the engine cannot batch: one frame per "
              "inference, cameras in turn"),
    ParamSpec("lazy", True, "skip a camera's frames (no conversion, no inference) while nobody "
              "subscribes to its detections or debug image"),
    ParamSpec("lazy_unsubscribe", False, "with lazy: also unsubscribe from an idle camera "
              "(no DDS copy of its frames; subscribing again costs the first frame or two)"),
    ParamSpec("lazy_filter", True, "with lazy: a content filter on an idle camera's "
              "subscription that matches no frame, so the middleware drops its frames before "
              "delivery (not counted); where the RMW has none, frames are counted as idle skips"),
    ParamSpec("autostart", True, "configure and activate on start (no lifecycle manager)", START),
)
SPECS = {s.name: s for s in PARAMS}
RUNTIME_TUNABLE = tuple(s.name for s in PARAMS if s.applies == NOW)


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    if spec.applies == CONFIGURE:
        text += " [applies at configure; change it while unconfigured]"
    d = ParameterDescriptor(description=text, read_only=spec.applies == START)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.bounds is not None:
        lo, hi = spec.bounds
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


# Parameters rclpy itself declares or reads on every node: never "unknown".
ROS_OWN_PARAMS = ("use_sim_time", "start_type_description_service")
ROS_OWN_PREFIXES = ("qos_overrides.",)
_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER,
          float: Parameter.Type.DOUBLE, str: Parameter.Type.STRING,
          list: Parameter.Type.STRING_ARRAY}
_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
          list: "a list of strings"}


def _coerce(spec: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """(the value as the spec's type, or why it cannot be); ``bool`` is never a number."""
    kind = type(spec.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value), None
    if kind is list and isinstance(value, (list, tuple)) \
            and all(isinstance(v, str) for v in value):
        return list(value) or [""], None
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return value, None
    return value, (f"{spec.name}: expected {_KINDS[kind]} (default {spec.default!r}), got "
                   f"{value!r} ({type(value).__name__})")


def check_value(spec: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """(the coerced value, or why the node cannot run with it): type, range, choices."""
    value, why = _coerce(spec, value)
    if why is not None:
        return value, why
    if spec.bounds is not None:
        lo, hi = spec.bounds
        if not lo <= value <= hi:
            return value, (f"{spec.name}={value!r} is outside {lo:g}..{hi:g} "
                           f"({spec.description})")
    why = choice_refusal(spec.name, value)
    return value, why


def unknown_name_warning(name: str) -> str | None:
    """The warning for a parameter name the node does not declare, or None if it is ours or
    rclpy's own."""
    if name in SPECS or name in ROS_OWN_PARAMS or name.startswith(ROS_OWN_PREFIXES):
        return None
    close = difflib.get_close_matches(name, list(SPECS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "see config/detector.yaml for the names"
    return f"unknown parameter {name!r} is ignored (misspelt?): {hint}"


def check_overrides(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Start-up values by name -> (the coerced values of declared parameters, problems that
    must stop the node, warnings for unknown names)."""
    fixed: dict[str, Any] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            warning = unknown_name_warning(name)
            if warning is not None:
                warnings.append(warning)
            continue
        coerced, why = check_value(spec, value)
        if why is not None:
            problems.append(why)
        else:
            fixed[name] = coerced
    return fixed, problems, warnings


def declare_all(node: Node) -> None:
    """Declare every parameter, taking the start-up values through :func:`check_overrides`
    first (rclpy would refuse ``confidence_threshold: 1`` with a type exception and a
    traceback). Raises :class:`ParameterError` listing every unusable value."""
    overrides = getattr(node, "_parameter_overrides", None)  # rclpy's store, Humble..Kilted
    if isinstance(overrides, dict):
        fixed, problems, warnings = check_overrides(
            {name: p.value for name, p in overrides.items()})
        for warning in warnings:
            node.get_logger().warning(warning)
        if problems:
            raise ParameterError(
                f"{len(problems)} parameter value(s) from the params file / -p cannot be used: "
                + "; ".join(problems) + ". Fix them (every parameter with its range is in "
                "config/detector.yaml) and start again")
        for name, value in fixed.items():
            if value != overrides[name].value or type(value) is not type(overrides[name].value):
                overrides[name] = Parameter(name, _TYPES[type(SPECS[name].default)], value)
    for spec in PARAMS:
        node.declare_parameter(spec.name, spec.default, _descriptor(spec))


def refuse(reason: str) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=reason)


def choice_refusal(name: str, value: Any) -> str | None:
    """Why ``value`` is not one of parameter ``name``'s choices, or None (also for the
    services, which take the same values)."""
    spec = SPECS.get(name)
    if spec is not None and spec.choices and value not in spec.choices:
        return f"{name}={value!r} is not one of {', '.join(spec.choices)}"
    if spec is not None and spec.check is not None:
        return spec.check(value)
    return None


def check_static(params: list[Parameter], configured: bool) -> SetParametersResult:
    """Choices, and restart-only parameters while configured (rclpy enforces ranges and
    read-only itself)."""
    for p in params:
        spec = SPECS.get(p.name)
        if spec is None:
            continue
        why = choice_refusal(p.name, p.value)
        if why is not None:
            return refuse(why)
        if spec.applies == CONFIGURE and configured:
            return refuse(f"{p.name} applies at configure: deactivate and clean up the node "
                          f"(ros2 lifecycle set <node> deactivate, then cleanup), set it, and "
                          f"configure again")
    return SetParametersResult(successful=True)
