"""ROS messages <-> core types: images in; detections, labels, status and variants out.

Everything an image message carries is outside input: strings from it (frame_id, encoding)
reach the log only through :func:`printable`, so a frame_id with a newline cannot forge a
log line, and rclpy's MessageInfo becomes a publisher key and sequence number for
:class:`~edge_trt_ros.runtime.counters.SequenceGaps`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)

from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.msg import EfficiencyStatus, VariantInfo
from edge_trt_ros.power.live import LiveFigures
from edge_trt_ros.runtime.counters import FAILED, REJECTED, REPLACED, CounterSnapshot
from edge_trt_ros.runtime.detector_runtime import DetectorRuntime
from edge_trt_ros.runtime.health import Health
from edge_trt_ros.runtime.stats import WindowStats
from edge_trt_ros.vision.decode import Detections
from edge_trt_ros.vision.image import ImageView, image_view

PRINTABLE_LIMIT = 120  # characters of an outside string shown in a log line

# rclpy >= Iron passes (msg, MessageInfo) to a callback that takes two arguments; Humble's
# subscriptions always call with the message alone.
SUBSCRIPTION_MESSAGE_INFO = hasattr(Subscription, "CallbackType")


def printable(text: str, limit: int = PRINTABLE_LIMIT) -> str:
    """``text`` safe for one log line: control and format characters and line separators
    (newline, carriage return, escape sequences, bidi overrides, U+2028) as ``\\xNN`` /
    ``\\uNNNN``; at most ``limit`` characters of output (escapes counted as written) plus
    a count of the characters left out."""
    out: list[str] = []
    size = 0
    taken = 0
    for ch in text[:limit]:
        category = unicodedata.category(ch)
        if category[0] == "C" or category in ("Zl", "Zp"):  # also U+2028/2029 line breaks
            code = ord(ch)
            ch = (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
                  if code < 0x10000 else f"\\U{code:08x}")
        if size + len(ch) > limit:
            break
        out.append(ch)
        size += len(ch)
        taken += 1
    rest = len(text) - taken
    return "".join(out) + (f"...(+{rest} chars)" if rest > 0 else "")


def view_of(msg: Image) -> ImageView:
    """Zero-copy view of an Image message; raises ImageFormatError on a frame it can't use
    (its message made :func:`printable`: it quotes the frame's own encoding)."""
    try:
        return image_view(msg.data, msg.encoding, msg.height, msg.width, msg.step)
    except ImageFormatError as exc:
        raise ImageFormatError(printable(str(exc), 400)) from None


def publisher_key(info: Mapping[str, Any]) -> object:
    """A hashable id of the message's publisher from rclpy's MessageInfo, or None when the
    RMW/rclpy does not report one (``publisher_gid`` is Kilted+)."""
    gid = info.get("publisher_gid")
    if not gid:
        return None
    if isinstance(gid, Mapping):
        data = gid.get("data", gid)
        try:
            return bytes(data)
        except (TypeError, ValueError):
            return repr(sorted(gid.items()))
    try:
        return bytes(gid)
    except (TypeError, ValueError):
        return repr(gid)


def publication_sequence(info: Mapping[str, Any]) -> int | None:
    """The publisher's sequence number of this message, or None where the RMW has none."""
    value = info.get("publication_sequence_number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def detections_msg(
    found: Detections, header: Header, class_names: Sequence[str]
) -> Detection2DArray:
    """One Detection2D per box, class name as class_id, bbox centre/size in image pixels."""
    out = Detection2DArray(header=header)
    boxes = found.boxes.tolist()
    scores = found.scores.tolist()
    classes = found.class_ids.tolist()
    for (x1, y1, x2, y2), score, cls in zip(boxes, scores, classes, strict=True):
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = class_names[cls] if cls < len(class_names) else str(cls)
        hypothesis.hypothesis.score = score
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x = (x1 + x2) * 0.5
        bbox.center.position.y = (y1 + y2) * 0.5
        out.detections.append(Detection2D(header=header, results=[hypothesis], bbox=bbox))
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, header: Header) -> LabelInfo:
    return LabelInfo(
        header=header,
        class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate(class_names)],
        threshold=float(threshold),
    )


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def efficiency_msg(header: Header, state: str, runtime: DetectorRuntime, stats: WindowStats,
                   counters: CounterSnapshot, figures: LiveFigures | None,
                   adaptive_mode: str = "off", last_decision: str = "") -> EfficiencyStatus:
    """The ~/efficiency message of a configured node."""
    active = runtime.active
    engine = active.first.engine.info
    variant = active.variant
    msg = EfficiencyStatus(
        header=header, state=state, variant=variant.name, backend=engine.backend,
        precision=engine.precision, fusion_profile=engine.fusion_profile,
        engine_id=engine.engine_id, window_s=float(stats.window_s), fps=float(stats.fps),
        inference_latency_p50_ms=stats.inference_p50_ms,
        inference_latency_p95_ms=stats.inference_p95_ms,
        inference_latency_p99_ms=stats.inference_p99_ms,
        end_to_end_latency_p50_ms=stats.end_to_end_p50_ms,
        end_to_end_latency_p95_ms=stats.end_to_end_p95_ms,
        frames_received=counters.received, frames_processed=counters.processed,
        frames_dropped=counters.dropped_total, frames_replaced=counters.dropped[REPLACED],
        frames_rejected=counters.dropped[REJECTED], frames_failed=counters.dropped[FAILED],
        frames_nonfinite=counters.nonfinite_frames,
        map50=_num(variant.map50), map50_drop_vs_fp32=_num(variant.drop()),
        adaptive_mode=adaptive_mode, last_decision=last_decision)
    nan = float("nan")
    msg.power_w = msg.energy_per_frame_mj = msg.fps_per_watt = nan
    msg.effective_tops_per_watt = msg.temperature_c = nan
    if figures is not None:
        e = figures.efficiency
        msg.power_w, msg.power_scope = _num(e.mean_watts), e.scope
        msg.power_source, msg.power_estimated = figures.sensor, e.estimated
        msg.energy_per_frame_mj = _num(e.energy_per_frame_mj)
        msg.fps_per_watt = _num(e.fps_per_watt)
        msg.effective_tops_per_watt = _num(e.effective_tops_per_watt)
        msg.temperature_c = _num(figures.thermal.max_celsius)
    return msg


def health_status(node_name: str, health: Health) -> DiagnosticStatus:
    """A core :class:`Health` as a diagnostic status named ``<node>: <concern>``."""
    return DiagnosticStatus(
        level=bytes([health.level]), name=f"{node_name}: {health.name}",
        message=health.message, hardware_id=health.hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in health.values.items()])


def variant_info_msg(entry: dict[str, Any], max_drop: float) -> VariantInfo:
    """One row of :meth:`DetectorRuntime.describe_variants` as a VariantInfo."""
    drops = entry.get("map50_drop_vs_fp32") or {}
    bins = entry.get("per_lux_bin_map50") or {}
    worst = max(drops.values()) if drops else (0.0 if entry["precision"] == "fp32"
                                               and entry.get("map50") is not None else None)
    return VariantInfo(
        name=entry["name"], precision=entry["precision"], file=entry["file"],
        recipe=entry["recipe"], runs_here=bool(entry["runs_here"]), reason=entry["reason"],
        map50=_num(entry.get("map50")), map50_drop_vs_fp32=_num(worst),
        within_guard=-1 if worst is None else int(worst <= max_drop + 1e-9),
        lux_bins=list(bins), lux_bin_map50=[_num(v) for v in bins.values()],
        lux_bin_drop_vs_fp32=[_num(drops.get(k)) for k in bins])
