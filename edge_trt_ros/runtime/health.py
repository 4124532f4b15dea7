"""What the detector's /diagnostics say, decided without ROS: one :class:`Health` per concern.

Levels follow diagnostic_msgs (OK 0, WARN 1, ERROR 2) and every status describes the current
window: a failed or rejected frame raises the level while it is recent and the status comes
back to OK once the stream is healthy again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_trt_ros.runtime.counters import (
    FAILED,
    NONFINITE,
    REJECTED,
    REPLACED,
    CounterSnapshot,
)
from edge_trt_ros.runtime.detector_runtime import DetectorRuntime
from edge_trt_ros.runtime.selection import guard_drops
from edge_trt_ros.runtime.stats import WindowStats
from edge_trt_ros.runtime.streams import IDLE_NO_SUBSCRIBERS, StreamSnapshot

OK, WARN, ERROR = 0, 1, 2
REFUSAL_SHOWN_S = 30.0  # a refused switch keeps the engine status at WARN this long


@dataclass(frozen=True)
class Health:
    name: str  # the concern: inference, engine, accuracy guard, input stream
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)
    hardware_id: str = ""


def _points(drop: float | None) -> str:
    return "n/a" if drop is None or not math.isfinite(drop) else f"{drop * 100:.2f}"


def inference_health(state: str, stats: WindowStats, counters: CounterSnapshot,
                     device: str = "", idle: bool = False) -> Health:
    """``idle``: lazy mode with nobody subscribed to any camera (OK: nothing to do)."""
    values = {"frames_processed": str(counters.processed),
              "frames_failed": str(counters.dropped[FAILED]),
              f"failed_last_{counters.window_s:g}s": str(counters.recent[FAILED]),
              "frames_nonfinite": str(counters.nonfinite_frames)}
    if state != "active":
        return Health("inference", WARN, f"{state}: no frames are processed", values, device)
    if idle:
        return Health("inference", OK, f"{IDLE_NO_SUBSCRIBERS} (lazy): frames are not "
                      "converted or inferred until someone subscribes to detections or the "
                      "debug image", values, device)
    if counters.recent[FAILED]:
        why = counters.last_reason.get(FAILED, "")
        return Health("inference", ERROR, f"{counters.recent[FAILED]} frames failed in the "
                      f"engine in the last {counters.window_s:g} s: {why}", values, device)
    if counters.recent[NONFINITE]:
        return Health("inference", WARN, f"the engine returned NaN/inf on "
                      f"{counters.recent[NONFINITE]} frames in the last {counters.window_s:g} s "
                      "(numeric overflow; those rows are dropped): switch to fp32 or rebuild the "
                      "variant with fp16 headroom (edge-trt variants)", values, device)
    if stats.frames:
        return Health("inference", OK, f"{stats.fps:.1f} fps, inference p50 "
                      f"{stats.inference_p50_ms:.1f} ms", values, device)
    return Health("inference", WARN, f"no frames in the last {stats.window_s:g} s", values,
                  device)


def input_health(state: str, counters: CounterSnapshot) -> Health:
    values = {"frames_received": str(counters.received),
              "frames_rejected": str(counters.dropped[REJECTED]),
              "frames_replaced": str(counters.dropped[REPLACED])}
    if state != "active":
        return Health("input stream", WARN, f"{state}: not subscribed to images", values)
    if counters.recent[REJECTED]:
        return Health("input stream", WARN, f"{counters.recent[REJECTED]} frames dropped in the "
                      f"last {counters.window_s:g} s: {counters.last_reason.get(REJECTED, '')}",
                      values)
    if counters.received:
        replaced = counters.recent[REPLACED]
        note = (f"; {replaced} replaced by newer frames in the last {counters.window_s:g} s "
                "(input faster than the engine)") if replaced else ""
        return Health("input stream", OK, f"{counters.received} frames received{note}", values)
    return Health("input stream", WARN, "no images received yet", values)


def engine_health(runtime: DetectorRuntime | None, now: float | None = None) -> Health:
    if runtime is None:
        return Health("engine", WARN, "no engine loaded (unconfigured)")
    active = runtime.active
    info = active.first.engine.info
    values = {"backend": info.backend, "backend_version": info.backend_version,
              "variant": active.variant.name, "precision": info.precision,
              "fusion_profile": info.fusion_profile, "engine_id": info.engine_id,
              "file": str(active.variant.path), "workers": str(len(active.detectors)),
              "selected_by": active.reason}
    last = runtime.last_switch
    refused_at = runtime.last_refusal_time
    now = time.monotonic() if now is None else now
    if last is not None:
        values["last_switch"] = last.message
    if refused_at is not None and now - refused_at < REFUSAL_SHOWN_S and last is not None \
            and not last.success:
        return Health("engine", WARN, f"running {active.label}; switch refused: "
                      f"{last.message}", values, info.device)
    return Health("engine", OK, f"running {active.label} on {info.backend} {info.device}",
                  values, info.device)


def guard_health(runtime: DetectorRuntime | None,
                 bins: Sequence[str] | None = None) -> Health:
    """The accuracy guard for the running variant: in every lux bin, or only in ``bins``
    (where the robot is now, when the adaptive controller chose by the current light)."""
    if runtime is None:
        return Health("accuracy guard", WARN, "no engine loaded (unconfigured)")
    active = runtime.active
    variant, limit = active.variant, runtime.max_accuracy_drop
    ev = variant.evaluation or {}
    values = {"variant": variant.name, "max_accuracy_drop_points": _points(limit),
              "map50": "n/a" if variant.map50 is None else f"{variant.map50:.4f}",
              "worst_drop_points": _points(variant.drop()),
              "checked_in": "every lux bin" if bins is None else ", ".join(bins)}
    values |= {f"drop_points_{k}": _points(v)
               for k, v in ev.get("map50_drop_vs_fp32", {}).items()}
    drops = guard_drops(variant, bins)
    worst = max(drops.values()) if drops else (0.0 if drops == {} else None)
    where = "every lux bin" if bins is None else f"{', '.join(bins)} (the current light)"
    if active.forced:
        return Health("accuracy guard", WARN, f"FORCED: {variant.name} loses "
                      f"{_points(variant.drop())} mAP@0.5 points against fp32 (max "
                      f"{_points(limit)})", values)
    if drops is None:
        level = OK if variant.precision == "fp32" else WARN
        return Health("accuracy guard", level, f"{variant.name}: accuracy not measured"
                      + ("" if level == OK else f" (`{runtime.catalog.build_command()}`)"),
                      values)
    if worst is not None and worst > limit + 1e-9:
        return Health("accuracy guard", WARN, f"{variant.name} loses {_points(worst)} points "
                      f"in {where}, above max_accuracy_drop {_points(limit)}", values)
    return Health("accuracy guard", OK, f"{variant.name} within {_points(limit)} points of "
                  f"fp32 in {where} (worst {_points(worst)})", values)


def _ms(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.1f}"


def camera_health(state: str, snap: StreamSnapshot, *, input_topic: str, transport: str,
                  detections_topic: str, debug_topic: str, subscribed: bool,
                  debug_images: int = 0, filtered: bool = False) -> Health:
    """One camera of a multi-camera node: its own counters and whether it is healthy, idle
    (lazy, nobody subscribed), rejecting frames, or stalled (no frame for a window)."""
    c, stats, window = snap.counters, snap.stats, snap.counters.window_s
    values = {"input": input_topic, "transport": transport, "detections": detections_topic,
              "debug_image": debug_topic, "subscribed_to_camera": str(subscribed).lower(),
              "filtered_by_dds": str(filtered).lower(),
              "has_subscribers": str(snap.wanted).lower(),
              "frames_received": str(c.received), "frames_processed": str(c.processed),
              "frames_idle_skipped": str(snap.idle_skipped),
              "frames_replaced": str(c.dropped[REPLACED]),
              "frames_rejected": str(c.dropped[REJECTED]),
              "frames_failed": str(c.dropped[FAILED]), "frames_batched": str(snap.batched),
              "fps": f"{stats.fps:.1f}",
              "end_to_end_p50_ms": _ms(stats.end_to_end_p50_ms),
              "end_to_end_p95_ms": _ms(stats.end_to_end_p95_ms),
              "convert_ms_p50": _ms(snap.convert_ms_p50), "debug_images": str(debug_images)}
    name = f"camera {snap.key}"
    if state != "active":
        return Health(name, WARN, f"{state}: not subscribed to images", values)
    if not snap.wanted:
        how = ("unsubscribed from the camera" if not subscribed else
               "DDS filters its frames out before delivery" if filtered else
               f"{snap.idle_skipped} frames let go unconverted")
        return Health(name, OK, f"{IDLE_NO_SUBSCRIBERS} ({how})", values)
    if c.recent[FAILED]:
        return Health(name, ERROR, f"{c.recent[FAILED]} frames failed in the engine in the "
                      f"last {window:g} s: {c.last_reason.get(FAILED, '')}", values)
    if c.recent[REJECTED]:
        return Health(name, WARN, f"{c.recent[REJECTED]} frames dropped in the last "
                      f"{window:g} s: {c.last_reason.get(REJECTED, '')}", values)
    if not c.received:
        return Health(name, WARN, f"no frames received yet on {input_topic}", values)
    if snap.last_arrival_age_s > window:
        return Health(name, WARN, f"stalled: no frame for {snap.last_arrival_age_s:.1f} s on "
                      f"{input_topic} ({c.received} received before)", values)
    replaced = c.recent[REPLACED]
    note = (f"; {replaced} replaced by newer frames in the last {window:g} s (the engine is "
            "shared and busy)") if replaced else ""
    return Health(name, OK, f"{stats.fps:.1f} fps, end-to-end p50 "
                  f"{_ms(stats.end_to_end_p50_ms)} ms{note}", values)
