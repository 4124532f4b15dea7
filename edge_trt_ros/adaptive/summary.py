"""What an audit log says happened: switches per hour, energy against always-fp32, time per
variant, guard refusals, forced switches (``edge-trt audit``).

Durations come from the records' monotonic stamps within each session (a restart starts a
new session and a new clock). Energy: each stretch of time on one variant is costed at that
variant's mJ/frame (realised, from the follow-up record one window after the switch, else
the expected figure the decision recorded) against fp32's mJ/frame in the latest candidate
table, assuming the same frame rate for both; stretches without both figures are left out and
the coverage says how much that was.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge_trt_ros.adaptive.audit import AuditRead

REFERENCE = "fp32"


@dataclass
class _Segment:
    variant: str
    start: float
    end: float
    mj: float | None
    mj_fp32: float | None
    ref: tuple[str, Any]  # ("auto", decision_id) | ("manual", seq) | ("start", None)
    session: str = ""


def _mj_table(candidates: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    return {c["name"]: c.get("mj_per_frame") for c in candidates}


def _start_table(table: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    return {r["name"]: (r.get("figures") or {}).get("mj_per_frame") for r in table}


@dataclass
class _Tally:
    segments: list[_Segment] = field(default_factory=list)
    switches: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    guard_refusal_records: int = 0
    guard_refused_variants: Counter[str] = field(default_factory=Counter)
    unmet_records: int = 0
    unmet_messages: Counter[str] = field(default_factory=Counter)
    manual_refusals: Counter[str] = field(default_factory=Counter)


def _walk(session: str, recs: list[dict[str, Any]], refused_ids: set[tuple[str, Any]],
          tally: _Tally) -> None:
    """One session's records in order: the stretches of time per variant and the counts."""
    table: dict[str, float | None] = {}
    current: str | None = None
    start: float | None = None
    ref: tuple[str, Any] = ("start", None)
    last_t: float | None = None

    def close(t: float | None) -> None:
        if current is None or start is None or t is None or t <= start:
            return
        tally.segments.append(_Segment(current, start, t, table.get(current),
                                       table.get(REFERENCE), ref, session))

    for r in recs:
        t = r.get("t_mono")
        kind = r.get("kind")
        if t is not None:
            last_t = t
        if kind == "start":
            table = _start_table(r.get("table") or [])
            current, start, ref = r.get("variant"), t, ("start", None)
        elif kind == "decision":
            if r.get("candidates"):
                table = _mj_table(r["candidates"])
            if r.get("guard_refused"):
                tally.guard_refusal_records += 1
                tally.guard_refused_variants.update(r["guard_refused"])
            if r.get("unmet"):
                tally.unmet_records += 1
                tally.unmet_messages.update(u.split(":")[0] for u in r["unmet"])
            if r.get("action") == "switch" and (session, r.get("decision_id")) \
                    not in refused_ids:
                if current is None:  # a log that lost its start record
                    current, start = r.get("from"), t
                close(t)
                current, start, ref = r.get("to"), t, ("auto", r.get("decision_id"))
                tally.switches["auto"] += 1
                tally.triggers[str(r.get("trigger"))] += 1
        elif kind in ("manual", "forced"):
            close(t)
            current, start, ref = r.get("to"), t, ("manual", r.get("seq"))
            tally.switches[str(kind)] += 1
        elif kind == "refusal" and r.get("mode") != "auto":
            tally.manual_refusals[str(r.get("cause") or "runtime")] += 1
        elif kind == "stop":
            if r.get("table"):
                table = _start_table(r["table"])
            close(t)
            current = start = None
    close(last_t)


def summarise(read: AuditRead) -> dict[str, Any]:
    """The summary as a JSON-ready dict (see the module docstring for the energy figure)."""
    records = read.records
    kinds = Counter(r.get("kind") for r in records)
    refused_ids = {(str(r.get("session")), r.get("decision_id")) for r in records
                   if r.get("kind") == "refusal" and r.get("mode") == "auto"}
    realised: dict[tuple[str, Any, Any], float] = {}
    followup_errors = []
    for r in records:
        if r.get("kind") == "followup" and r.get("realised"):
            mj = r["realised"].get("mj_per_frame")
            if mj is not None:
                mode = "auto" if r.get("mode") == "auto" else "manual"
                realised[(str(r.get("session")), mode, r.get("ref"))] = mj
            if r.get("mj_per_frame_error") is not None:
                followup_errors.append(abs(r["mj_per_frame_error"]))

    tally = _Tally()
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_session[str(r.get("session"))].append(r)
    for session, recs in by_session.items():
        _walk(session, recs, refused_ids, tally)
    segments, switches, triggers = tally.segments, tally.switches, tally.triggers
    sessions = len(by_session)
    guard_refusal_records = tally.guard_refusal_records
    guard_refused_variants, unmet_records = tally.guard_refused_variants, tally.unmet_records
    unmet_messages, manual_refusals = tally.unmet_messages, tally.manual_refusals

    for seg in segments:
        mode, key = seg.ref
        hit = realised.get((seg.session, mode, key)) if mode != "start" else None
        if hit is not None:
            seg.mj = hit

    seconds: dict[str, float] = defaultdict(float)
    for s in segments:
        seconds[s.variant] += s.end - s.start
    total_s = sum(seconds.values())
    costed = [s for s in segments if s.mj is not None and s.mj_fp32]
    costed_s = sum(s.end - s.start for s in costed)
    energy = sum((s.end - s.start) * (s.mj or 0.0) for s in costed)
    baseline = sum((s.end - s.start) * (s.mj_fp32 or 0.0) for s in costed)
    n_switches = sum(switches.values())
    hours = total_s / 3600.0
    return {
        "files": list(read.files),
        "records": len(records),
        "records_by_kind": dict(kinds),
        "sessions": sessions,
        "skipped_lines": [{"file": s.file, "line": s.line, "reason": s.reason}
                          for s in read.skipped],
        "seq_gaps": [list(g) for g in read.seq_gaps],
        "hours": round(hours, 4),
        "switches": n_switches,
        "switches_by_mode": dict(switches),
        "switches_per_hour": round(n_switches / hours, 3) if hours > 0 else None,
        "switch_triggers": dict(triggers),
        "time_per_variant_s": {k: round(v, 1) for k, v in sorted(seconds.items())},
        "time_share": {k: round(v / total_s, 4) for k, v in sorted(seconds.items())}
        if total_s else {},
        "energy_vs_fp32": {
            "ratio": round(energy / baseline, 4) if baseline else None,
            "saved": round(1 - energy / baseline, 4) if baseline else None,
            "coverage": round(costed_s / total_s, 4) if total_s else None,
            "basis": "time-weighted mJ/frame of the running variant (realised from follow-ups "
                     "where recorded, else expected) against fp32's in the latest candidate "
                     "table; same frame rate assumed",
        },
        "guard_refusals": guard_refusal_records + manual_refusals.get("guard", 0),
        "guard_refused_variants": dict(guard_refused_variants),
        "manual_refusals": dict(manual_refusals),
        "runtime_refusals_of_auto_switches": len(refused_ids),
        "forced_switches": switches.get("forced", 0),
        "unmet_records": unmet_records,
        "unmet_constraints": dict(unmet_messages),
        "followups": kinds.get("followup", 0),
        "followup_mean_abs_mj_error": round(sum(followup_errors) / len(followup_errors), 4)
        if followup_errors else None,
    }


def format_summary(s: dict[str, Any]) -> str:
    """A readable table of :func:`summarise`'s result."""
    e = s["energy_vs_fp32"]
    modes = ", ".join(f"{k} {v}" for k, v in s["switches_by_mode"].items()) or "none"
    per_hour = "n/a" if s["switches_per_hour"] is None else f"{s['switches_per_hour']:g}"
    lines = [
        f"audit log: {len(s['files'])} file(s), {s['records']} records, "
        f"{s['sessions']} session(s), {s['hours']:.2f} h",
        "records: " + ", ".join(f"{k} {v}" for k, v in sorted(s["records_by_kind"].items())),
        f"switches: {s['switches']} ({modes}); {per_hour} per hour",
    ]
    if s["switch_triggers"]:
        lines.append("automatic switches by trigger: " + ", ".join(
            f"{k} {v}" for k, v in sorted(s["switch_triggers"].items())))
    saved = "n/a" if e["saved"] is None else f"{e['saved'] * 100:.1f}%"
    cover = "n/a" if e["coverage"] is None else f"{e['coverage'] * 100:.0f}%"
    lines.append(f"energy per frame vs always-fp32: {saved} saved (figures for {cover} of "
                 "the time)")
    lines.append("")
    lines.append(f"{'variant':<16} {'time':>10} {'share':>7}")
    for name, sec in s["time_per_variant_s"].items():
        lines.append(f"{name:<16} {sec / 3600:>9.2f}h {s['time_share'][name] * 100:>6.1f}%")
    lines.append("")
    refused = ", ".join(f"{k} {v}" for k, v in s["guard_refused_variants"].items())
    lines.append(f"guard refusals: {s['guard_refusals']}" + (f" ({refused})" if refused else ""))
    lines.append(f"forced switches: {s['forced_switches']}; manual refusals: "
                 f"{sum(s['manual_refusals'].values())}; runtime refusals of automatic "
                 f"switches: {s['runtime_refusals_of_auto_switches']}")
    if s["unmet_records"]:
        lines.append(f"no variant met every constraint in {s['unmet_records']} decision(s): "
                     + ", ".join(s["unmet_constraints"]))
    if s["followup_mean_abs_mj_error"] is not None:
        lines.append(f"follow-ups: {s['followups']}, mean |realised - expected| mJ/frame "
                     f"{s['followup_mean_abs_mj_error'] * 100:.1f}%")
    for sk in s["skipped_lines"]:
        lines.append(f"skipped {sk['file']}:{sk['line']}: {sk['reason']}")
    if s["seq_gaps"]:
        lines.append(f"MISSING records between seq {s['seq_gaps']}")
    return "\n".join(lines)
