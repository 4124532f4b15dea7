"""Replay a shift trace through the controller without ROS, with given per-variant costs.

Each step the controller gets the light, temperature and battery of the sample and the live
window of the variant that served the previous step (its figures with measurement noise);
a switch it asks for is done at once (or after ``switch_s``, during which the old variant
keeps serving). Energy is counted from the noise-free costs, and so is the always-fp32
baseline at the same input rate. A frame counts as a guard violation when the variant that
served it fails the guard in the lux bin of that step's light (unless it was forced).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.guard import check
from edge_trt_ros.adaptive.inputs import Battery, Inputs, Light, LiveWindow, Thermal
from edge_trt_ros.adaptive.shift import ShiftTrace
from edge_trt_ros.dataset.lighting import lux_bin

REFERENCE = "fp32"


@dataclass(frozen=True)
class VariantCost:
    """What one variant costs in the replay."""

    name: str
    fps: float  # frames/s it can serve (capacity)
    mj_per_frame: float  # energy per frame at the replay's input rate
    source: str = ""  # where the figure comes from (say "estimate" when it is one)


@dataclass(frozen=True)
class ReplayResult:
    hours: float
    input_fps: float
    frames: float
    energy_j: float
    fp32_frames: float
    fp32_energy_j: float
    energy_saved_vs_fp32: float | None  # 1 - (mJ/frame adaptive) / (mJ/frame always fp32)
    guard_violations: float  # frames served outside the guard for that step's lux bin
    switches: int
    switches_per_hour: float
    decisions: int
    decisions_recorded: int
    time_per_variant_s: dict[str, float]
    switch_triggers: dict[str, int]
    unmet_s: float
    thermal_protection_s: float
    battery_saver_s: float
    timeline: tuple[tuple[float, str, str, str, str], ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hours": round(self.hours, 3), "input_fps": self.input_fps,
            "frames": round(self.frames), "energy_j": round(self.energy_j, 1),
            "energy_per_frame_mj": round(1000 * self.energy_j / self.frames, 2)
            if self.frames else None,
            "fp32_energy_per_frame_mj": round(1000 * self.fp32_energy_j / self.fp32_frames, 2)
            if self.fp32_frames else None,
            "energy_saved_vs_fp32": None if self.energy_saved_vs_fp32 is None
            else round(self.energy_saved_vs_fp32, 4),
            "guard_violations": round(self.guard_violations),
            "switches": self.switches, "switches_per_hour": round(self.switches_per_hour, 3),
            "decisions": self.decisions, "decisions_recorded": self.decisions_recorded,
            "time_per_variant_s": {k: round(v, 1) for k, v in self.time_per_variant_s.items()},
            "switch_triggers": self.switch_triggers, "unmet_s": round(self.unmet_s, 1),
            "thermal_protection_s": round(self.thermal_protection_s, 1),
            "battery_saver_s": round(self.battery_saver_s, 1),
            "switch_log": [{"t_s": round(t, 1), "from": a, "to": b, "trigger": trig,
                            "reason": why} for t, a, b, trig, why in self.timeline],
        }


def replay(trace: ShiftTrace, controller: AdaptiveController,
           costs: Mapping[str, VariantCost], *, input_fps: float, noise: float = 0.03,
           seed: int = 0, switch_s: float = 0.0, t0: float = 0.0,
           scope: str = "system_estimate", estimated: bool = True) -> ReplayResult:
    """Run the whole trace; ``controller`` must have been built with ``now = t0`` and know
    every variant in ``costs``."""
    rng = np.random.default_rng(seed)
    max_drop = controller.config.max_accuracy_drop
    accuracy = {r.name: r.accuracy for r in controller.table.rows()}
    ref = costs[REFERENCE]
    frames = energy = fp32_frames = fp32_energy = violations = 0.0
    unmet_s = thermal_s = battery_s = 0.0
    seconds: dict[str, float] = defaultdict(float)
    triggers: Counter[str] = Counter()
    timeline: list[tuple[float, str, str, str, str]] = []
    switches = 0
    prev: tuple[str, float, float, float] | None = None  # (variant, start, end, served fps)

    def noisy(x: float) -> float:
        return float(x * math.exp(rng.normal(0.0, noise))) if noise > 0 else x

    for i, sample in enumerate(trace.samples):
        now = t0 + sample.t
        dt = trace.step_s
        window = None
        if prev is not None:
            name, start, end, served = prev
            cost = costs[name]
            fps = noisy(served)
            mj = noisy(cost.mj_per_frame)
            window = LiveWindow(name, start, end, int(round(served * (end - start))), fps,
                                inference_p50_ms=noisy(1000.0 / cost.fps), workers=1,
                                input_fps=input_fps, power_w=mj * fps / 1000.0,
                                energy_per_frame_mj=mj, scope=scope, estimated=estimated)
        inputs = Inputs(window=window,
                        thermal=Thermal(sample.celsius, sample.throttling, trace.throttle_c,
                                        now, "trace"),
                        battery=Battery(sample.battery_pct, sample.charging, now),
                        light=Light(sample.lux, now), input_fps=input_fps,
                        extra={"trace_index": i})
        before = controller.state.current
        decision = controller.step(inputs, now)
        served_by: list[tuple[str, float]] = []
        if decision.switch:
            lag = min(switch_s, dt)
            if lag > 0:
                served_by.append((before, lag))
            controller.switch_done(decision, True, "replayed", now + lag, switch_ms=lag * 1000)
            served_by.append((decision.to_variant, dt - lag))
            switches += 1
            triggers[decision.trigger] += 1
            timeline.append((sample.t, before, decision.to_variant, decision.trigger,
                             decision.reason))
        else:
            served_by.append((before, dt))
        if decision.unmet:
            unmet_s += dt
        thermal_s += dt if decision.thermal_protection else 0.0
        battery_s += dt if decision.battery_saver else 0.0
        bin_now = (lux_bin(sample.lux),)
        for name, span in served_by:
            if span <= 0:
                continue
            cost = costs[name]
            served = min(input_fps, cost.fps)
            n = served * span
            frames += n
            energy += n * cost.mj_per_frame / 1000.0
            seconds[name] += span
            if not controller.state.forced and not check(accuracy[name], bin_now,
                                                         max_drop).passed:
                violations += n
        n_ref = min(input_fps, ref.fps) * dt
        fp32_frames += n_ref
        fp32_energy += n_ref * ref.mj_per_frame / 1000.0
        last_name, last_span = served_by[-1]
        prev = (last_name, now + dt - last_span, now + dt, min(input_fps, costs[last_name].fps))

    hours = trace.hours
    saved = None
    if frames and fp32_frames and fp32_energy:
        saved = 1.0 - (energy / frames) / (fp32_energy / fp32_frames)
    return ReplayResult(
        hours, input_fps, frames, energy, fp32_frames, fp32_energy, saved, violations,
        switches, switches / hours if hours else 0.0, controller.state.decisions,
        controller.decisions_recorded, dict(seconds), dict(triggers), unmet_s, thermal_s,
        battery_s, tuple(timeline))
