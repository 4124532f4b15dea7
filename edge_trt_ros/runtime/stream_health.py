"""What /diagnostics says about frame delivery: frames lost before the node saw them, and
image stamps that cannot be latencies (clock skew). Decided without ROS, like
:mod:`edge_trt_ros.runtime.health`, whose :class:`Health` it returns."""

from __future__ import annotations

import math

from edge_trt_ros.runtime.counters import LOST, CounterSnapshot
from edge_trt_ros.runtime.health import OK, WARN, Health
from edge_trt_ros.runtime.stats import MAX_PLAUSIBLE_AGE_MS, WindowStats

NAME = "input delivery"


def _skew_text(ms: float) -> str:
    if not math.isfinite(ms):
        return "unknown"
    ahead = ms < 0
    s = abs(ms) / 1000.0
    amount = f"{s / 3600:.1f} h" if s >= 3600 else f"{s:.1f} s" if s >= 1 else f"{abs(ms):.0f} ms"
    return f"{amount} {'ahead of' if ahead else 'behind'} the node's clock"


def delivery_health(state: str, stats: WindowStats, counters: CounterSnapshot) -> Health:
    """WARN while frames are being lost before the callback or stamps disagree with the
    node's clock; OK otherwise. Values carry the lifetime totals and how loss is known."""
    values = {"frames_lost": str(counters.dropped.get(LOST, 0)),
              f"lost_last_{counters.window_s:g}s": str(counters.recent.get(LOST, 0)),
              "lost_counted_from": counters.lost_tracking or "no frame yet",
              "clock_skew_frames": str(stats.clock_skew_total),
              f"clock_skew_last_{stats.window_s:g}s": str(stats.clock_skew_frames)}
    if state != "active":
        return Health(NAME, OK, f"{state}: not subscribed to images", values)
    problems = []
    lost = counters.recent.get(LOST, 0)
    if lost:
        problems.append(f"{lost} frames published by the camera never reached the node in the "
                        f"last {counters.window_s:g} s (subscription queue full or network "
                        "loss): raise input_qos.depth, lower the camera rate, or check the "
                        "network (reliable input_qos)")
    if stats.clock_skew_frames:
        problems.append(f"{stats.clock_skew_frames} frames in the last {stats.window_s:g} s had "
                        f"stamps {_skew_text(stats.last_skew_ms)} (more than "
                        f"{MAX_PLAUSIBLE_AGE_MS / 1000:g} s old or in the future): their "
                        "end-to-end latency is not reported; synchronise the camera's clock "
                        "(chrony/PTP) or check use_sim_time")
    if problems:
        return Health(NAME, WARN, "; ".join(problems), values)
    return Health(NAME, OK, "no frames lost before the node, stamps agree with its clock"
                  if counters.lost_tracking.startswith("publisher") else
                  f"stamps agree with the node's clock; lost frames {counters.lost_tracking}"
                  if counters.lost_tracking else "no frames yet", values)
