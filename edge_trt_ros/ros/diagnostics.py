"""Power and thermal figures as /diagnostics statuses (rqt_robot_monitor shows these)."""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from edge_trt_ros.power.live import LiveFigures


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def power_status(node_name: str, figures: LiveFigures, why_estimated: str) -> DiagnosticStatus:
    """OK when a real sensor measures; WARN when the figures are an estimate, with why."""
    e = figures.efficiency
    status = DiagnosticStatus(name=f"{node_name}: power", hardware_id=figures.sensor)
    summary = (f"{_num(e.mean_watts, '.1f')} W, {_num(e.energy_per_frame_mj, '.1f')} mJ/frame "
               f"over {e.window_s:.1f} s ({e.scope})")
    if e.estimated:
        status.level = DiagnosticStatus.WARN
        status.message = f"ESTIMATED {summary}: no power sensor ({why_estimated})"
    elif e.samples == 0:
        status.level, status.message = DiagnosticStatus.WARN, "no power readings yet"
    else:
        status.level, status.message = DiagnosticStatus.OK, summary
    status.values = [
        KeyValue(key="source", value=e.source),
        KeyValue(key="scope", value=e.scope),
        KeyValue(key="method", value=e.method),
        KeyValue(key="estimated", value=str(e.estimated).lower()),
        KeyValue(key="mean_watts", value=_num(e.mean_watts, ".3f")),
        KeyValue(key="energy_per_frame_mj", value=_num(e.energy_per_frame_mj, ".3f")),
        KeyValue(key="fps_per_watt", value=_num(e.fps_per_watt, ".4f")),
        KeyValue(key="effective_tops_per_watt", value=_num(e.effective_tops_per_watt, ".5f")),
        KeyValue(key="window_s", value=f"{e.window_s:.2f}"),
    ]
    return status


def thermal_status(node_name: str, figures: LiveFigures) -> DiagnosticStatus:
    """WARN while any zone is at its passive trip point (the SoC is throttling)."""
    t = figures.thermal
    status = DiagnosticStatus(name=f"{node_name}: thermal")
    if t.throttling:
        status.level = DiagnosticStatus.WARN
        status.message = f"throttling: {', '.join(t.reasons)}"
    elif t.max_celsius is None:
        status.level, status.message = DiagnosticStatus.OK, "no thermal sensors readable"
    else:
        status.level, status.message = DiagnosticStatus.OK, f"max {t.max_celsius:.1f} C"
    status.values = [KeyValue(key=z.type, value=f"{z.celsius:.1f}") for z in t.zones]
    if t.gpu_celsius is not None:
        status.values.append(KeyValue(key="gpu", value=f"{t.gpu_celsius:.1f}"))
    return status
