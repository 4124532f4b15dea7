"""One decision of the adaptive controller: a pure function of (inputs, state, now).

:func:`decide` takes the settings, the per-variant table (accuracy + efficiency), the live
inputs, the controller's state and the time, and returns a frozen :class:`Decision`: stay or
switch, the trigger, one reason line, and the whole candidate table with each candidate's
verdicts. It logs nothing and changes nothing; :class:`~edge_trt_ros.adaptive.controller.
AdaptiveController` keeps the state and writes the audit.

The rules, in order:

1. A variant the operator forced past the guard is kept (automatic switching pauses).
2. The accuracy guard (:mod:`edge_trt_ros.adaptive.guard`) filters every candidate; if the
   running variant fails it under the light there is now, the decision moves away at once,
   without waiting for the dwell time.
3. Modes: near the throttle threshold (``thermal_margin_c`` below it, or throttling) the
   ranking becomes "least power" until the temperature is ``thermal_release_c`` below it;
   with the battery low and not charging the objective becomes ``efficiency``.
4. Among the variants that pass the guard, reach ``target_fps`` and stay within
   ``power_budget_w``, the objective ranks: ``efficiency`` least mJ/frame, ``throughput``
   most fps, ``accuracy`` least mAP drop in the current lux bin. If none meets every
   constraint, the most accurate one that passes the guard is kept and ``unmet`` says which
   constraint cannot be met.
5. No oscillation: a better candidate must beat the running one by ``hysteresis`` (the
   running one only fails a constraint once ``hysteresis`` past it), and no automatic switch
   happens within ``min_dwell_s`` of the last, guard moves excepted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edge_trt_ros.adaptive.config import ACCURACY, EFFICIENCY, THROUGHPUT, ControllerConfig
from edge_trt_ros.adaptive.guard import GuardVerdict, bins_near, check
from edge_trt_ros.adaptive.inputs import Inputs
from edge_trt_ros.adaptive.table import PRIOR, VariantRow
from edge_trt_ros.dataset.lighting import lux_bin

STAY, SWITCH = "stay", "switch"
POWER = "power"  # the ranking under thermal protection (least watts at the stream's rate)
MODE_THERMAL, MODE_BATTERY = "thermal_protection", "battery_saver"
# Triggers: what made this decision what it is.
GUARD, THERMAL, BATTERY, OBJECTIVE, CONSTRAINT = "guard", "thermal", "battery", "objective", \
    "constraint"
FALLBACK, CONFIG, DWELL, STEADY = "fallback", "config", "dwell", "steady"
FORCED_HOLD, SWITCHING, WAITING = "forced_hold", "switching", "waiting_for_measurement"


@dataclass(frozen=True)
class ControllerState:
    """What the controller remembers between decisions."""

    current: str  # the variant serving frames
    since: float  # monotonic time it started serving (the dwell clock)
    forced: bool = False  # the operator forced it past the guard: no automatic switching
    pending: str = ""  # a switch asked of the runtime and not yet done
    thermal_protection: bool = False
    battery_saver: bool = False
    dwell_waived: bool = False  # the settings changed: the next switch need not wait
    blocked: tuple[tuple[str, float, str], ...] = ()  # (variant, until, why) runtime refusals
    light: tuple[tuple[float, float], ...] = ()  # (t, lux) readings of the last light_hold_s
    situation: str = ""  # what the last recorded decision reported (see Decision.record)
    decisions: int = 0

    def blocked_now(self, name: str, now: float) -> str:
        for variant, until, why in self.blocked:
            if variant == name and now < until:
                return why
        return ""


@dataclass(frozen=True)
class Context:
    """The inputs as the decision read them (stale readings already dropped)."""

    lux: float | None
    lux_bin: str | None
    lux_range: tuple[float, float] | None  # darkest and brightest of the last light_hold_s
    guard_bins: tuple[str, ...]  # checked for the running variant
    candidate_bins: tuple[str, ...]  # checked for the others (that range, twice the margin)
    temperature_c: float | None
    throttle_c: float | None
    throttling: bool
    battery_pct: float | None
    charging: bool | None
    demand_fps: float | None  # the rate frames arrive at (what a variant must serve)
    ignored: tuple[str, ...] = ()  # readings too old to use, with their age


@dataclass(frozen=True)
class Candidate:
    """One variant's verdicts in this decision."""

    name: str
    precision: str
    current: bool
    guard: GuardVerdict
    fps: float | None  # capacity
    power_w: float | None  # expected at the stream's rate (mJ/frame x served fps)
    mj_per_frame: float | None
    figures: str  # measured | seeded | prior | unknown
    samples: int
    meets_fps: bool | None
    within_power: bool | None
    blocked: str  # why the runtime refused it recently ("" = not blocked)
    eligible: bool
    drop: float | None  # worst mAP drop over the bins its guard checked (accuracy ranking)
    note: str = ""  # why it is not eligible

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["guard"] = self.guard.to_dict()
        for k in ("fps", "power_w", "mj_per_frame", "drop"):
            if d[k] is not None:
                d[k] = round(d[k], 4 if k == "drop" else 3)
        return d


@dataclass(frozen=True)
class Expected:
    """What the chosen variant should deliver (from the table), checked a window later."""

    fps: float | None
    power_w: float | None
    mj_per_frame: float | None
    map50: float | None
    drop: float | None
    figures: str


@dataclass(frozen=True)
class Decision:
    id: int
    now: float
    action: str  # stay | switch
    from_variant: str
    to_variant: str  # == from_variant when staying
    to_precision: str
    trigger: str
    reason: str
    objective: str  # the ranking used: efficiency | throughput | accuracy | power
    configured_objective: str
    modes: tuple[str, ...]
    unmet: tuple[str, ...]  # constraints no guard-passing variant meets (a diagnostic WARN)
    guard_refused: tuple[str, ...]  # variants that would rank better but fail the guard
    candidates: tuple[Candidate, ...]
    context: Context
    expected: Expected
    situation: str  # what this decision reports, for Decision.record
    record: bool  # a switch, or the situation changed: worth one audit record
    thermal_protection: bool
    battery_saver: bool
    config: ControllerConfig = field(compare=False, default_factory=ControllerConfig)

    @property
    def switch(self) -> bool:
        return self.action == SWITCH

    @property
    def guard_violation(self) -> bool:
        """The running variant failed the guard (the move away skips the dwell time)."""
        return self.trigger == GUARD

    def summary(self) -> str:
        """One line for ``~/efficiency`` ``last_decision`` and the log."""
        move = (f"{self.from_variant} -> {self.to_variant}" if self.switch
                else f"stay {self.from_variant}")
        return f"{move} [{self.trigger}]: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.id, "t_mono": self.now, "action": self.action,
            "from": self.from_variant, "to": self.to_variant, "to_precision": self.to_precision,
            "trigger": self.trigger, "reason": self.reason, "objective": self.objective,
            "configured_objective": self.configured_objective, "modes": list(self.modes),
            "unmet": list(self.unmet), "guard_refused": list(self.guard_refused),
            "context": asdict(self.context), "expected": asdict(self.expected),
            "candidates": [c.to_dict() for c in self.candidates],
            "config": self.config.to_dict(),
        }


# -- helpers ----------------------------------------------------------------------------------
def _fresh(t: float, now: float, stale_s: float) -> bool:
    return now - t <= stale_s


def _fmt(x: float | None, spec: str = ".0f") -> str:
    return "n/a" if x is None else format(x, spec)


def _context(config: ControllerConfig, inputs: Inputs, state: ControllerState,
             now: float) -> Context:
    ignored = []
    lux = None
    if inputs.light is not None:
        if _fresh(inputs.light.t, now, config.stale_s):
            lux = inputs.light.lux
        else:
            ignored.append(f"illuminance {now - inputs.light.t:.0f} s old")
    temp = throttle = None
    throttling = False
    if inputs.thermal is not None:
        if _fresh(inputs.thermal.t, now, config.stale_s):
            temp, throttle = inputs.thermal.celsius, inputs.thermal.throttle_c
            throttling = inputs.thermal.throttling
        else:
            ignored.append(f"temperature {now - inputs.thermal.t:.0f} s old")
    pct = charging = None
    if inputs.battery is not None:
        if _fresh(inputs.battery.t, now, config.stale_s):
            pct, charging = inputs.battery.percentage, inputs.battery.charging
        else:
            ignored.append(f"battery {now - inputs.battery.t:.0f} s old")
    demand = None
    if inputs.window is not None and math.isfinite(inputs.window.input_fps):
        demand = inputs.window.input_fps
    elif inputs.input_fps is not None and math.isfinite(inputs.input_fps):
        demand = inputs.input_fps
    elif config.target_fps > 0:
        demand = config.target_fps
    if demand is not None and demand <= 0:
        demand = None
    m = config.lux_margin_decades
    seen = None
    if lux is not None:
        recent = [x for t, x in state.light if now - t <= config.light_hold_s] + [lux]
        seen = (min(recent), max(recent))
    return Context(lux, None if lux is None else lux_bin(lux), seen, bins_near(lux, m),
                   bins_near(seen[0], 2 * m, seen[1]) if seen else bins_near(None, m),
                   temp, throttle, throttling, pct, charging, demand, tuple(ignored))


def _modes(config: ControllerConfig, ctx: Context, state: ControllerState) -> tuple[bool, bool]:
    """(thermal protection, battery saver), each with its own hysteresis; an unknown
    reading keeps the mode as it was."""
    thermal = state.thermal_protection
    if ctx.throttling:
        thermal = True
    elif ctx.temperature_c is not None and ctx.throttle_c is not None:
        if ctx.temperature_c >= ctx.throttle_c - config.thermal_margin_c:
            thermal = True
        elif ctx.temperature_c <= ctx.throttle_c - config.thermal_release_c:
            thermal = False
    battery = state.battery_saver
    if ctx.battery_pct is not None:
        if ctx.charging:
            battery = False
        elif ctx.battery_pct <= config.battery_low_pct:
            battery = True
        elif ctx.battery_pct >= config.battery_release_pct:
            battery = False
    return thermal, battery


def _candidate(row: VariantRow, config: ControllerConfig, ctx: Context,
               state: ControllerState, now: float) -> Candidate:
    is_current = row.name == state.current
    guard = check(row.accuracy, ctx.guard_bins if is_current else ctx.candidate_bins,
                  config.max_accuracy_drop)
    f = row.figures
    served = f.fps if ctx.demand_fps is None or f.fps is None else min(f.fps, ctx.demand_fps)
    power = f.power_w
    if f.mj_per_frame is not None and served:
        power = f.mj_per_frame * served / 1000.0
    slack = config.hysteresis if is_current else 0.0
    if config.target_fps <= 0:
        meets_fps: bool | None = True
    elif f.fps is None:
        meets_fps = True if is_current else None  # running and not measured yet: its window
    else:
        meets_fps = f.fps >= config.target_fps * (1.0 - slack) - 1e-9
    if config.power_budget_w <= 0:
        within: bool | None = True
    elif power is None:
        within = True if is_current else None
    else:
        within = power <= config.power_budget_w * (1.0 + slack) + 1e-9
    blocked = "" if is_current else state.blocked_now(row.name, now)
    drops = [row.accuracy.drop(b) for b in guard.bins]
    drop = None if any(d is None for d in drops) or not drops else max(
        d for d in drops if d is not None)
    notes = []
    if not guard.passed:
        notes.append(f"guard: {guard.why}")
    if meets_fps is not True:
        notes.append("fps not known" if meets_fps is None else
                     f"{_fmt(f.fps, '.1f')} fps < target {config.target_fps:g}")
    if within is not True:
        notes.append("power not known" if within is None else
                     f"{_fmt(power, '.1f')} W > budget {config.power_budget_w:g}")
    if blocked:
        notes.append(f"refused by the runtime: {blocked}")
    prior_only = f.source == PRIOR and not config.allow_priors and not is_current
    if prior_only:
        notes.append("efficiency only a prior (allow_priors is off)")
    eligible = guard.passed and meets_fps is True and within is True and not blocked \
        and not prior_only
    return Candidate(row.name, row.precision, is_current, guard, f.fps, power, f.mj_per_frame,
                     f.source, f.samples, meets_fps, within, blocked, eligible, drop,
                     "; ".join(notes))


def _inf(x: float | None) -> float:
    return math.inf if x is None else x


def _loss(c: Candidate) -> float | None:
    """The accuracy a variant loses against fp32 for ranking: a negative drop (a variant
    scoring above the model it was made from on a few hundred frames) is evaluation noise,
    so it counts as no loss and does not make a quantized variant "more accurate"."""
    return None if c.drop is None else max(0.0, c.drop)


def _key(c: Candidate, ranking: str) -> tuple[float, ...]:
    """Sort key, best first, for a ranking."""
    if ranking == THROUGHPUT:
        return (-(c.fps or 0.0), _inf(c.mj_per_frame))
    if ranking == ACCURACY:
        return (_inf(_loss(c)), _inf(c.mj_per_frame))
    if ranking == POWER:
        return (_inf(c.power_w), _inf(c.mj_per_frame))
    return (_inf(c.mj_per_frame), -(c.fps or 0.0))


def _figure(c: Candidate, ranking: str) -> float | None:
    return {THROUGHPUT: c.fps, ACCURACY: _loss(c), POWER: c.power_w}.get(ranking,
                                                                         c.mj_per_frame)


def _describe(c: Candidate, ranking: str) -> str:
    if ranking == THROUGHPUT:
        return f"{_fmt(c.fps, '.1f')} fps"
    if ranking == ACCURACY:
        loss = _loss(c)
        return f"loses {_fmt(None if loss is None else loss * 100, '.2f')} mAP points"
    if ranking == POWER:
        return f"{_fmt(c.power_w, '.1f')} W"
    return f"{_fmt(c.mj_per_frame)} mJ/frame"


def _beats(best: Candidate, cur: Candidate, ranking: str,
           config: ControllerConfig) -> tuple[bool | None, str]:
    """(does ``best`` beat ``cur`` by the hysteresis?, how much); None = cannot compare."""
    b, c = _figure(best, ranking), _figure(cur, ranking)
    if b is None or c is None:
        return None, ""
    if ranking == ACCURACY:
        gain = c - b
        return gain >= config.accuracy_hysteresis - 1e-12, f"{gain * 100:.2f} points better"
    if ranking == THROUGHPUT:
        rel = (b - c) / c if c > 0 else math.inf
        return rel >= config.hysteresis, f"+{rel * 100:.0f}%"
    rel = (c - b) / c if c > 0 else 0.0
    return rel >= config.hysteresis, f"-{rel * 100:.0f}%"


def _unmet(config: ControllerConfig, passing: Sequence[Candidate]) -> tuple[str, ...]:
    """Which constraints no guard-passing variant meets (one phrase each)."""
    if not passing:
        return ("accuracy guard: no variant passes it under this light",)
    out = []
    fps_ok = [c for c in passing if c.meets_fps is True]
    power_ok = [c for c in passing if c.within_power is True]
    if config.target_fps > 0 and not fps_ok:
        best = max(passing, key=lambda c: c.fps or 0.0)
        out.append(f"target_fps {config.target_fps:g}: the fastest variant that passes the "
                   f"guard, {best.name}, reaches {_fmt(best.fps, '.1f')} fps")
    if config.power_budget_w > 0 and not power_ok:
        best = min(passing, key=lambda c: _inf(c.power_w))
        out.append(f"power_budget_w {config.power_budget_w:g}: the lowest-power variant that "
                   f"passes the guard, {best.name}, needs {_fmt(best.power_w, '.1f')} W")
    if not out and fps_ok and power_ok:
        if not any(c.meets_fps and c.within_power for c in passing):
            out.append(f"target_fps {config.target_fps:g} and power_budget_w "
                       f"{config.power_budget_w:g} together: no variant meets both")
        else:  # the ones that meet both are blocked or prior-only
            out.append("every variant meeting the constraints was refused by the runtime "
                       "or has only a prior efficiency")
    return tuple(out)


def _situation(ranking: str, modes: tuple[str, ...], unmet: tuple[str, ...],
               refused: tuple[str, ...], cur: Candidate | None, state: ControllerState,
               now: float) -> str:
    blocked = sorted(v for v, until, _ in state.blocked if now < until)
    return json.dumps([ranking, modes, [u.split(":")[0] for u in unmet], refused,
                       None if cur is None else cur.guard.passed, state.forced, blocked])


# -- the decision -----------------------------------------------------------------------------
def decide(config: ControllerConfig, rows: Sequence[VariantRow], inputs: Inputs,
           state: ControllerState, now: float) -> Decision:
    """Stay or switch, and why; pure (no I/O, no clock, no state changed)."""
    ctx = _context(config, inputs, state, now)
    thermal, battery = _modes(config, ctx, state)
    modes = tuple(m for m, on in ((MODE_THERMAL, thermal), (MODE_BATTERY, battery)) if on)
    objective = EFFICIENCY if battery else config.objective
    ranking = POWER if thermal else objective
    cands = tuple(_candidate(r, config, ctx, state, now) for r in rows)
    by_name = {c.name: c for c in cands}
    cur = by_name.get(state.current)
    eligible = [c for c in cands if c.eligible]
    passing = [c for c in cands if c.guard.passed and not c.blocked]
    unmet: tuple[str, ...] = ()
    if eligible:
        best = min(eligible, key=lambda c: _key(c, ranking))
    elif passing:
        best = min(passing, key=lambda c: _key(c, ACCURACY))
        unmet = _unmet(config, passing)
    else:
        best = cur if cur is not None else cands[0]
        unmet = _unmet(config, [])
    refused = () if state.forced else tuple(  # forced: the operator overrode the guard
        c.name for c in cands if not c.guard.passed and c.meets_fps is True
        and c.within_power is True and not c.blocked and _key(c, ranking) < _key(best, ranking))

    trigger, reason, target = _choose(config, ctx, state, now, ranking, objective, thermal,
                                      battery, cur, best, unmet)
    chosen = by_name.get(target, cur)
    row = {r.name: r for r in rows}.get(target)
    expected = Expected(
        None if chosen is None else chosen.fps, None if chosen is None else chosen.power_w,
        None if chosen is None else chosen.mj_per_frame,
        None if row is None else row.accuracy.map50, None if chosen is None else chosen.drop,
        "" if chosen is None else chosen.figures)
    situation = _situation(ranking, modes, unmet, refused, cur, state, now)
    action = SWITCH if target != state.current else STAY
    if ctx.ignored:
        reason += f" (ignored: {', '.join(ctx.ignored)})"
    return Decision(
        id=state.decisions + 1, now=now, action=action, from_variant=state.current,
        to_variant=target, to_precision=row.precision if row is not None else "",
        trigger=trigger, reason=reason, objective=ranking, configured_objective=config.objective,
        modes=modes, unmet=unmet, guard_refused=refused, candidates=cands, context=ctx,
        expected=expected, situation=situation,
        record=action == SWITCH or situation != state.situation,
        thermal_protection=thermal, battery_saver=battery, config=config)


def _light(ctx: Context) -> str:
    return "light unknown" if ctx.lux is None else f"{ctx.lux:.0f} lux ({ctx.lux_bin})"


def _choose(config: ControllerConfig, ctx: Context, state: ControllerState, now: float,
            ranking: str, objective: str, thermal: bool, battery: bool,
            cur: Candidate | None, best: Candidate,
            unmet: tuple[str, ...]) -> tuple[str, str, str]:
    """(trigger, reason, variant to run)."""
    name = state.current
    if state.forced:
        why = "" if cur is None or cur.guard.passed else f" ({cur.guard.why})"
        return (FORCED_HOLD, f"{name} was forced by the operator{why}: automatic switching "
                "paused until a switch without force", name)
    if state.pending:
        return SWITCHING, f"waiting for the switch to {state.pending}", name
    unmet_text = (f"no variant meets every constraint ({'; '.join(unmet)}); the most "
                  f"accurate that passes the guard is {best.name}") if unmet else ""
    if cur is None or not cur.guard.passed:
        why = "is not in the variant table" if cur is None else cur.guard.why
        if best.name == name or not best.guard.passed:
            return GUARD, f"{name} {why} at {_light(ctx)} and no variant passes the guard", name
        detail = unmet_text or f"{best.name} passes it ({_describe(best, ranking)})"
        return GUARD, (f"{name} {why} at {_light(ctx)}: moving to {best.name} now, without "
                       f"waiting for the dwell time; {detail}"), best.name
    if best.name == name:
        if unmet:
            return FALLBACK, f"{unmet_text}; keeping it", name
        if thermal:
            return THERMAL, (f"thermal protection ({_fmt(ctx.temperature_c, '.1f')} C, "
                             f"throttling at {_fmt(ctx.throttle_c, '.0f')} C): {name} is "
                             f"already the lowest-power variant ({_describe(cur, POWER)})"), name
        return STEADY, f"{name} is the best by {ranking} ({_describe(cur, ranking)})", name

    # A different variant ranks first: is it worth a switch?
    if unmet:
        beats, how = _beats(best, cur, ACCURACY, config)
        if not beats:
            return FALLBACK, f"{unmet_text}, not more accurate than {name} by the margin; " \
                "keeping it", name
        trigger, why = FALLBACK, unmet_text + f" ({how})"
    elif not cur.eligible:
        trigger, why = CONSTRAINT, (f"{name} no longer qualifies ({cur.note}); {best.name} "
                                    f"does ({_describe(best, ranking)})")
    else:
        beats, how = _beats(best, cur, ranking, config)
        if beats is None:
            return WAITING, (f"{best.name} may be better by {ranking}, but {name} has no "
                             "measured figures yet"), name
        if not beats:
            stays = (f"{name} stays: {best.name} is only {how} by {ranking} "
                     f"(hysteresis {config.hysteresis * 100:.0f}%)")
            if thermal:  # ranking by power because of the heat: say so in the audit
                return THERMAL, (f"thermal protection ({_fmt(ctx.temperature_c, '.1f')} C, "
                                 f"throttling at {_fmt(ctx.throttle_c, '.0f')} C): "
                                 f"{stays}"), name
            return STEADY, stays, name
        if thermal:
            trigger = THERMAL
            why = (f"{_fmt(ctx.temperature_c, '.1f')} C, throttling at "
                   f"{_fmt(ctx.throttle_c, '.0f')} C: lower power with {best.name} "
                   f"({_describe(best, POWER)} vs {_describe(cur, POWER)}, {how})")
        elif battery:
            trigger = BATTERY
            why = (f"battery {_fmt(ctx.battery_pct, '.0f')}% and not charging: favouring "
                   f"energy with {best.name} ({_describe(best, EFFICIENCY)} vs "
                   f"{_describe(cur, EFFICIENCY)}, {how})")
        else:
            trigger = OBJECTIVE
            why = (f"{best.name} is better by {objective}: {_describe(best, ranking)} vs "
                   f"{_describe(cur, ranking)} ({how})")
        if best.figures == PRIOR:
            why += "; its figures are a prior until it has run"
    if state.dwell_waived:
        trigger, why = CONFIG, f"settings changed: {why}"
    else:
        waited = now - state.since
        if waited < config.min_dwell_s:
            return DWELL, (f"would move to {best.name} ({why}), but {name} has run only "
                           f"{waited:.0f} s (min_dwell_s {config.min_dwell_s:g})"), name
    return trigger, why + f"; passes the guard at {_light(ctx)}", best.name


def after(state: ControllerState, decision: Decision) -> ControllerState:
    """The state once ``decision`` is made (modes, situation, count); a switch only takes
    effect through :func:`switched` when the runtime has done it."""
    light = state.light
    ctx, hold = decision.context, decision.config.light_hold_s
    if ctx.lux is not None:
        light = (*(x for x in light if decision.now - x[0] < hold), (decision.now, ctx.lux))
    return replace(state, light=light, thermal_protection=decision.thermal_protection,
                   battery_saver=decision.battery_saver,
                   situation=decision.situation if decision.record else state.situation,
                   decisions=decision.id, dwell_waived=False,
                   pending=decision.to_variant if decision.switch else state.pending)


def switched(state: ControllerState, variant: str, now: float, *,
             forced: bool = False) -> ControllerState:
    """``variant`` serves frames from ``now`` (the dwell clock restarts)."""
    return replace(state, current=variant, since=now, forced=forced, pending="",
                   dwell_waived=False,
                   blocked=tuple(b for b in state.blocked if b[0] != variant and b[1] > now))


def refused(state: ControllerState, variant: str, now: float, why: str,
            retry_s: float) -> ControllerState:
    """The runtime refused ``variant``: keep the current one, do not ask again for a while."""
    keep = tuple(b for b in state.blocked if b[0] != variant and b[1] > now)
    return replace(state, pending="", blocked=(*keep, (variant, now + retry_s, why)))
