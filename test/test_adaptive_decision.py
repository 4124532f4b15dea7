"""The adaptive controller on scripted traces: the guard per lux bin, heat, battery, noise,
dwell and hysteresis, the "nothing meets every constraint" report; pure-Python, no ROS.

The tables are built here (the shipped manifest's int8 variants pass the guard in every
bin): ``int8-full`` is the issue's full u8s8 int8, cheapest but 0.75 mAP points down in the
dark bin only.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from edge_trt_ros.adaptive.config import ControllerConfig
from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.decision import ControllerState, decide
from edge_trt_ros.adaptive.guard import Accuracy, bins_near, check
from edge_trt_ros.adaptive.inputs import (
    Battery,
    Inputs,
    Light,
    LiveWindow,
    Thermal,
    throttle_threshold,
)
from edge_trt_ros.adaptive.replay import ReplayResult, VariantCost, replay
from edge_trt_ros.adaptive.shift import ShiftSample, ShiftTrace
from edge_trt_ros.adaptive.table import MEASURED, PRIOR, SEEDED, EfficiencyTable
from edge_trt_ros.errors import AdaptiveConfigError
from edge_trt_ros.power.profiles import load_profiles
from edge_trt_ros.power.thermal import ThermalStatus, ZoneReading


def evaluation(**drops: float) -> dict:
    return {"map50": 0.98, "map50_drop_vs_fp32": {"overall": max(drops.values()), **drops}}


MANIFEST = {"variants": {
    "fp32": {"precision": "fp32", "evaluation": {"map50": 0.9874}},
    "fp16": {"precision": "fp16",
             "evaluation": evaluation(dark=0.0005, dim=0.0001, bright=0.0002, sunlit=0.0002)},
    "int8-full": {"precision": "int8",  # full u8s8: fails the guard in the dark bin only
                  "evaluation": evaluation(dark=0.0075, dim=0.0025, bright=0.0024,
                                           sunlit=0.0030)},
    "int8-ort": {"precision": "int8",
                 "evaluation": evaluation(dark=0.0025, dim=0.0014, bright=0.0010,
                                          sunlit=0.0022)},
}}
# capacity fps, mJ/frame at 30 fps
COSTS = {"fp32": VariantCost("fp32", 38.0, 1780.0), "fp16": VariantCost("fp16", 42.0, 1630.0),
         "int8-full": VariantCost("int8-full", 78.0, 900.0),
         "int8-ort": VariantCost("int8-ort", 74.0, 1076.0)}


def table(manifest: dict = MANIFEST, costs: dict = COSTS) -> EfficiencyTable:
    t = EfficiencyTable.from_manifest(manifest)
    for name, c in costs.items():
        if name in t.names():
            t.seed(name, fps=c.fps, mj_per_frame=c.mj_per_frame, detail="test costs")
    return t


def trace(samples: list[tuple[float, float, float]], step_s: float = 1.0,
          throttle_c: float = 90.0) -> ShiftTrace:
    """(lux, celsius, battery %) per step."""
    return ShiftTrace(tuple(ShiftSample(i * step_s, lux, c, c >= throttle_c, pct, False)
                            for i, (lux, c, pct) in enumerate(samples)),
                      step_s, throttle_c, 0, "scripted")


def variant_at(result: ReplayResult, start: str, t: float) -> str:
    name = start
    for when, _, to, _, _ in result.timeline:
        if when <= t:
            name = to
    return name


def log_ramp(a: float, b: float, n: int) -> list[float]:
    return [a * (b / a) ** (i / max(n - 1, 1)) for i in range(n)]


# -- the guard --------------------------------------------------------------------------------
def test_guard_checks_the_current_bin_and_the_bins_near_its_edges() -> None:
    full = Accuracy.from_evaluation(MANIFEST["variants"]["int8-full"]["evaluation"], "int8")
    assert check(full, bins_near(5000, 0.1), 0.005).passed  # bright
    assert check(full, bins_near(300, 0.1), 0.005).passed  # mid dim
    assert bins_near(110, 0.1) == ("dark", "dim")  # within 0.1 decade of the 100 lux edge
    verdict = check(full, bins_near(110, 0.1), 0.005)
    assert not verdict.passed and "dark 0.75" in verdict.why
    assert not check(full, bins_near(40, 0.1), 0.005).passed
    # light unknown: the camera could be in any bin, so every bin (and overall) must pass
    assert bins_near(None, 0.1) == ("overall", "dark", "dim", "bright", "sunlit")
    assert not check(full, bins_near(None, 0.1), 0.005).passed
    # a range of recent light: every bin it touches
    assert bins_near(300, 0.2, upto=20000) == ("dim", "bright", "sunlit")


def test_fp32_always_passes_and_an_unmeasured_variant_never_does() -> None:
    assert check(Accuracy.from_evaluation(None, "fp32"), bins_near(40, 0.1), 0.0).passed
    unmeasured = check(Accuracy.from_evaluation(None, "int8"), bins_near(5000, 0.1), 0.005)
    assert not unmeasured.passed and unmeasured.why == "accuracy not measured"
    partial = Accuracy.from_evaluation({"map50_drop_vs_fp32": {"overall": 0.001}}, "int8")
    assert not check(partial, bins_near(5000, 0.1), 0.005).passed  # bright never measured


def test_unmeasured_variant_is_never_chosen_even_when_cheapest() -> None:
    manifest = {"variants": {**MANIFEST["variants"],
                             "int8-new": {"precision": "int8", "evaluation": None}}}
    costs = {**COSTS, "int8-new": VariantCost("int8-new", 90.0, 500.0)}
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=10),
                              table(manifest, costs), "fp32", 0.0)
    result = replay(trace([(5000, 50, 80)] * 120), ctrl, costs, input_fps=30, noise=0)
    assert result.time_per_variant_s.get("int8-new", 0) == 0
    assert variant_at(result, "fp32", 119) == "int8-full"
    new = next(c for c in ctrl.last.candidates if c.name == "int8-new")
    assert not new.eligible and new.guard.why == "accuracy not measured"


# -- scripted traces --------------------------------------------------------------------------
def test_light_dropping_below_the_dark_edge_moves_away_at_once_and_comes_back_later() -> None:
    """Bright -> dark over 10 min, dark 10 min, back to bright: int8-full (cheapest, fails
    only in the dark) is left before the light reaches the dark bin, without waiting for the
    dwell time, and chosen again only once the light is well clear of the edge."""
    lux = [3000.0] * 120 + log_ramp(3000, 40, 600) + [40.0] * 600 + log_ramp(40, 3000, 600) \
        + [3000.0] * 900
    config = ControllerConfig(target_fps=30, min_dwell_s=600)
    ctrl = AdaptiveController(config, table(), "int8-full", 0.0)
    tr = trace([(x, 50.0, 80.0) for x in lux])
    result = replay(tr, ctrl, COSTS, input_fps=30, noise=0.02)

    assert result.guard_violations == 0
    moves = [(t, a, b, trig) for t, a, b, trig, _ in result.timeline]
    assert moves[0][1:] == ("int8-full", "int8-ort", "guard")
    t_away = moves[0][0]
    assert t_away < 600  # well inside min_dwell_s of the start: the guard does not wait
    assert 100 < lux[int(t_away)] <= 126  # before the dark bin, within the edge margin
    assert moves[1][1:] == ("int8-ort", "int8-full", "objective")
    t_back = moves[1][0]
    assert t_back - t_away >= 600  # an ordinary switch waits for the dwell time
    assert lux[int(t_back)] > 100 * 10 ** 0.2  # clear of the edge by twice the margin
    assert len(moves) == 2
    # in the dark the record says which variant the guard refused
    dark = Inputs(light=Light(40, 1e6), input_fps=30)
    d = decide(ctrl.config, ctrl.table.rows(), dark,
               dataclasses.replace(ctrl.state, current="int8-ort", since=0.0), 1e6)
    assert d.guard_refused == ("int8-full",) and d.to_variant == "int8-ort"


def test_noisy_light_at_a_bin_edge_does_not_switch_back_and_forth() -> None:
    """Two hours at ~130 lux with 10% noise and passing shadows, just above the dark edge."""
    import numpy as np

    rng = np.random.default_rng(1)
    lux = 130 * np.exp(rng.normal(0, 0.1, 7200))
    lux[3000:3040] *= 0.6  # a shadow
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=60), table(),
                              "int8-full", 0.0)
    result = replay(trace([(float(x), 50.0, 80.0) for x in lux]), ctrl, COSTS, input_fps=30)
    assert result.guard_violations == 0
    assert result.switches <= 2, result.timeline
    assert result.timeline[0][3] == "guard"


def test_heat_ramp_moves_to_a_lower_power_variant_before_throttling() -> None:
    """Accuracy objective (fp32 runs); the device heats to 88 C (throttles at 90) and cools.
    Protection starts 5 C below the threshold, ends 10 C below it; fp32 comes back."""
    temps = [60.0] * 120 + [60 + 28 * i / 900 for i in range(900)] + [88.0] * 600 \
        + [88 - 28 * i / 900 for i in range(900)] + [60.0] * 600
    config = ControllerConfig(objective="accuracy", target_fps=30, min_dwell_s=60)
    ctrl = AdaptiveController(config, table(), "fp32", 0.0)
    result = replay(trace([(5000.0, c, 80.0) for c in temps]), ctrl, COSTS, input_fps=30)

    moves = [(t, a, b, trig) for t, a, b, trig, _ in result.timeline]
    assert [m[1:] for m in moves] == [("fp32", "int8-full", "thermal"),
                                      ("int8-full", "fp32", "objective")]
    hot = temps[int(moves[0][0])]
    assert 85 - 1.5 <= hot < 90  # before throttling (noise-free trace: at the 85 C mark)
    cool = temps[int(moves[1][0])]
    assert cool <= 80 + 1e-6  # protection released 10 C below the threshold
    assert not any(s.throttling for s in trace([(5000.0, c, 80.0) for c in temps]).samples)
    assert "thermal" not in ctrl.last.modes


def test_battery_draining_favours_energy_until_it_charges() -> None:
    """Accuracy objective; the battery drains 40% -> 10%, then the robot docks."""
    pct = [40 - 30 * i / 3000 for i in range(3000)]
    samples = [(5000.0, 50.0, math.floor(p)) for p in pct]
    tr = trace(samples)
    charging = tuple(dataclasses.replace(s, t=s.t + 3000, charging=True) for s in tr.samples[:600])
    tr = dataclasses.replace(tr, samples=tr.samples + charging)
    ctrl = AdaptiveController(ControllerConfig(objective="accuracy", target_fps=30,
                                               min_dwell_s=60), table(), "fp32", 0.0)
    result = replay(tr, ctrl, COSTS, input_fps=30)
    moves = [(t, a, b, trig) for t, a, b, trig, _ in result.timeline]
    assert [m[1:] for m in moves] == [("fp32", "int8-full", "battery"),
                                      ("int8-full", "fp32", "objective")]
    assert math.floor(pct[int(moves[0][0])]) <= 20
    assert moves[1][0] >= 3000  # back to the most accurate once charging
    assert result.battery_saver_s > 0


def test_noisy_steady_state_does_not_oscillate_between_near_equal_variants() -> None:
    """Two int8 variants 5% apart, 5% measurement noise, 4 hours: one switch at most."""
    costs = {**COSTS, "int8-ort": VariantCost("int8-ort", 74.0, 945.0)}
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=60),
                              table(costs=costs), "int8-ort", 0.0)
    result = replay(trace([(5000.0, 50.0, 80.0)] * (4 * 3600)), ctrl, costs, input_fps=30,
                    noise=0.05)
    assert result.switches <= 1, result.timeline
    assert result.switches_per_hour <= 12


def test_dwell_holds_a_better_candidate_until_min_dwell_s() -> None:
    config = ControllerConfig(target_fps=30, min_dwell_s=120)
    ctrl = AdaptiveController(config, table(), "fp32", 0.0)
    first = ctrl.step(Inputs(light=Light(5000, 10.0), input_fps=30), 10.0)
    assert not first.switch and first.trigger == "dwell"
    assert "min_dwell_s 120" in first.reason and "int8-full" in first.reason
    later = ctrl.step(Inputs(light=Light(5000, 121.0), input_fps=30), 121.0)
    assert later.switch and later.to_variant == "int8-full" and later.trigger == "objective"
    # while the switch is in flight nothing else is asked
    again = ctrl.step(Inputs(light=Light(5000, 122.0), input_fps=30), 122.0)
    assert not again.switch and again.trigger == "switching"


def test_hysteresis_keeps_the_running_variant_unless_beaten_by_the_margin() -> None:
    costs = {**COSTS, "int8-ort": VariantCost("int8-ort", 74.0, 940.0)}
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=0),
                              table(costs=costs), "int8-ort", 0.0)
    d = ctrl.step(Inputs(light=Light(5000, 1.0), input_fps=30), 1.0)
    assert not d.switch and d.trigger == "steady" and "-4%" in d.reason, d.reason


def test_no_variant_meets_every_constraint_keeps_the_most_accurate_and_says_why() -> None:
    config = ControllerConfig(target_fps=120, power_budget_w=20, min_dwell_s=0)
    ctrl = AdaptiveController(config, table(), "int8-full", 0.0)
    d = ctrl.step(Inputs(light=Light(5000, 1.0), input_fps=30), 1.0)
    assert d.switch and d.to_variant == "fp32" and d.trigger == "fallback"
    assert any(u.startswith("target_fps 120") and "int8-full, reaches 78.0 fps" in u
               for u in d.unmet), d.unmet
    assert any(u.startswith("power_budget_w 20") for u in d.unmet), d.unmet
    assert "no variant meets every constraint" in d.reason
    # in the dark the guard also removes int8-full; still fp32, still reported
    d2 = decide(config, ctrl.table.rows(), Inputs(light=Light(40, 2.0), input_fps=30),
                dataclasses.replace(ctrl.state, current="fp32", pending=""), 2.0)
    assert not d2.switch and d2.trigger == "fallback" and d2.unmet


def test_light_unknown_or_stale_uses_every_bin() -> None:
    config = ControllerConfig(target_fps=30, min_dwell_s=0, stale_s=10)
    state = ControllerState("fp32", -100.0)
    rows = table().rows()
    known = decide(config, rows, Inputs(light=Light(5000, 100.0), input_fps=30), state, 100.0)
    assert known.to_variant == "int8-full"
    unknown = decide(config, rows, Inputs(input_fps=30), state, 100.0)
    assert unknown.to_variant == "int8-ort"  # int8-full fails in the dark: not without light
    stale = decide(config, rows, Inputs(light=Light(5000, 80.0), input_fps=30), state, 100.0)
    assert stale.to_variant == "int8-ort" and "illuminance 20 s old" in stale.reason


def test_decide_is_pure() -> None:
    config = ControllerConfig(target_fps=30, min_dwell_s=0)
    state = ControllerState("fp32", 0.0)
    rows = table().rows()
    inputs = Inputs(light=Light(40, 5.0), thermal=Thermal(70.0, False, 90.0, 5.0),
                    battery=Battery(50, False, 5.0), input_fps=30)
    a = decide(config, rows, inputs, state, 5.0)
    b = decide(config, rows, inputs, state, 5.0)
    assert a == b and a.to_dict() == b.to_dict()
    assert state == ControllerState("fp32", 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.action = "stay"  # type: ignore[misc]


def test_forced_variant_is_held_and_a_manual_switch_resumes() -> None:
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=0), table(),
                              "fp32", 0.0)
    ctrl.manual("int8-full", success=True, forced=True, message="forced", now=1.0)
    d = ctrl.step(Inputs(light=Light(40, 2.0), input_fps=30), 2.0)
    assert not d.switch and d.trigger == "forced_hold" and "dark 0.75" in d.reason
    ctrl.manual("fp32", success=True, forced=False, message="ok", now=3.0)
    d = ctrl.step(Inputs(light=Light(40, 4.0), input_fps=30), 4.0)
    assert d.switch and d.to_variant == "int8-ort"


def test_guard_ok_tells_the_illuminance_callback_when_to_decide_now() -> None:
    ctrl = AdaptiveController(ControllerConfig(), table(), "int8-full", 0.0)
    assert ctrl.guard_ok(5000) and ctrl.guard_ok(300)
    assert not ctrl.guard_ok(110) and not ctrl.guard_ok(40) and not ctrl.guard_ok(None)


def test_diagnostic_levels() -> None:
    from edge_trt_ros.adaptive.health import adaptive_health
    from edge_trt_ros.runtime.health import OK, WARN

    assert adaptive_health(None, enabled=False).level == OK
    ctrl = AdaptiveController(ControllerConfig(target_fps=120, min_dwell_s=0), table(),
                              "fp32", 0.0)
    ctrl.step(Inputs(light=Light(5000, 1.0), input_fps=30), 1.0)
    h = adaptive_health(ctrl, enabled=True)
    assert h.level == WARN and h.message.startswith("no variant meets every constraint")
    assert "target_fps 120" in h.message and h.values["variant"] == "fp32"
    ok = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=0), table(), "fp32",
                            0.0)
    ok.step(Inputs(light=Light(5000, 1.0), input_fps=30), 1.0)
    assert adaptive_health(ok, enabled=True).level == OK
    ok.manual("int8-full", success=True, forced=True, message="", now=2.0)
    assert "forced by the operator" in adaptive_health(ok, enabled=True).message


def test_a_runtime_refusal_blocks_that_variant_for_a_while() -> None:
    ctrl = AdaptiveController(ControllerConfig(target_fps=30, min_dwell_s=0,
                                               refused_retry_s=300), table(), "fp32", 0.0)
    d = ctrl.step(Inputs(light=Light(5000, 1.0), input_fps=30), 1.0)
    assert d.to_variant == "int8-full"
    ctrl.switch_done(d, False, "no calibration for int8", 1.5)
    d2 = ctrl.step(Inputs(light=Light(5000, 2.0), input_fps=30), 2.0)
    assert d2.switch and d2.to_variant == "int8-ort"
    blocked = next(c for c in d2.candidates if c.name == "int8-full")
    assert blocked.blocked == "no calibration for int8" and not blocked.eligible
    ctrl.switch_done(d2, True, "ok", 2.5)
    d3 = ctrl.step(Inputs(light=Light(5000, 400.0), input_fps=30), 400.0)
    assert d3.switch and d3.to_variant == "int8-full"  # retried after refused_retry_s


def test_throughput_objective_respects_the_power_budget() -> None:
    config = ControllerConfig(objective="throughput", power_budget_w=31, min_dwell_s=0)
    rows = table().rows()
    d = decide(config, rows, Inputs(light=Light(5000, 1.0), input_fps=30),
               ControllerState("fp32", 0.0), 1.0)
    # int8-full: 27 W at 30 fps (within), int8-ort 32.3 W (over): the fastest within budget
    assert d.to_variant == "int8-full"
    over = next(c for c in d.candidates if c.name == "int8-ort")
    assert over.within_power is False and "W > budget 31" in over.note


def test_settings_are_validated_and_a_change_waives_the_dwell() -> None:
    with pytest.raises(AdaptiveConfigError, match="objective"):
        ControllerConfig(objective="fastest").validate()
    with pytest.raises(AdaptiveConfigError, match="max_accuracy_drop"):
        ControllerConfig(max_accuracy_drop=2).validate()
    with pytest.raises(AdaptiveConfigError, match="thermal_release_c"):
        ControllerConfig(thermal_margin_c=10, thermal_release_c=5).validate()
    with pytest.raises(AdaptiveConfigError, match="min_dwell_s"):
        ControllerConfig(min_dwell_s=math.nan).validate()
    ctrl = AdaptiveController(ControllerConfig(objective="accuracy", min_dwell_s=600),
                              table(), "fp32", 0.0)
    assert not ctrl.step(Inputs(light=Light(5000, 5.0), input_fps=30), 5.0).switch
    with pytest.raises(AdaptiveConfigError):
        ctrl.reconfigure(ControllerConfig(objective="nope"), 6.0)
    ctrl.reconfigure(ControllerConfig(objective="efficiency", min_dwell_s=600), 6.0)
    d = ctrl.step(Inputs(light=Light(5000, 7.0), input_fps=30), 7.0)
    assert d.switch and d.trigger == "config" and d.to_variant == "int8-full"


# -- the efficiency table ----------------------------------------------------------------------
def test_table_learns_from_settled_windows_and_marks_priors() -> None:
    t = EfficiencyTable.from_manifest(MANIFEST, alpha=0.5)
    t.seed("fp32", fps=38.0, detail="manifest predict_ms")
    assert t.row("fp32").figures.source == SEEDED and t.row("int8-ort").figures.source != PRIOR
    w = LiveWindow("fp32", 0.0, 1.0, 30, 30.0, inference_p50_ms=25.0, power_w=54.0,
                   energy_per_frame_mj=1800.0, scope="system_estimate")
    assert t.observe(w)
    fp32 = t.row("fp32").figures
    assert fp32.source == MEASURED and fp32.samples == 1 and fp32.fps == pytest.approx(40.0)
    t.observe(dataclasses.replace(w, energy_per_frame_mj=1600.0))
    assert t.row("fp32").figures.mj_per_frame == pytest.approx(1700.0)  # EWMA, alpha 0.5
    assert t.row("fp32").figures.samples == 2
    prior = t.row("int8-ort").figures
    assert prior.source == PRIOR and prior.mj_per_frame == pytest.approx(850.0)
    assert "precision factor; not measured" in prior.detail
    assert not t.observe(dataclasses.replace(w, variant="nope"))
    # the controller ignores a window that began before the switch it follows
    ctrl = AdaptiveController(ControllerConfig(min_dwell_s=0), t, "fp32", 0.0)
    ctrl.manual("int8-ort", success=True, forced=False, message="", now=10.0)
    ctrl.step(Inputs(window=LiveWindow("int8-ort", 9.0, 11.0, 60, 30.0,
                                       energy_per_frame_mj=1.0)), 11.0)
    assert ctrl.table.row("int8-ort").figures.source == PRIOR
    ctrl.step(Inputs(window=LiveWindow("int8-ort", 11.0, 12.0, 30, 30.0,
                                       energy_per_frame_mj=1000.0)), 12.0)
    assert ctrl.table.row("int8-ort").figures.source == MEASURED


def test_throttle_threshold_prefers_the_devices_trip_point() -> None:
    profiles = load_profiles()
    zone = ZoneReading("thermal_zone0", "cpu-thermal", 60.0, passive_trip_c=97.0)
    status = ThermalStatus(60.0, False, (), (zone,))
    assert throttle_threshold(profiles["orin_nx_16gb"], status) == (
        97.0, "lowest passive trip point of the thermal zones")
    limit, why = throttle_threshold(profiles["orin_nx_16gb"], ThermalStatus(60.0, False))
    assert limit == 95.0 and "jetson" in why and "not measured" in why
    assert throttle_threshold(profiles["x86_cpu"], status, configured=80.0) == (80.0,
                                                                                "configured")
