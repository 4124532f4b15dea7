"""Markdown for a person: a benchmark result (and a comparison of two) as tables.

The report says how the numbers were made before it shows them (when, which command, the
power sensor and whether it is an estimate, the idle baseline), then the frontier, the
plots, the speed/energy table, the accuracy table, and what was left out and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_trt_ros.reports.figures import spread_range


def _f(value: Any, spec: str = ".2f") -> str:
    if value is None or isinstance(value, bool):
        return "n/a"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _with_range(value: Any, s: Mapping[str, Any] | None, spec: str) -> str:
    text = _f(value, spec)
    r = spread_range(s)  # type: ignore[arg-type]
    return text if r is None else f"{text} ({_f(r[0], spec)}–{_f(r[1], spec)})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _bins(result: dict[str, Any]) -> list[str]:
    for e in result["entries"]:
        bins = (e.get("accuracy") or {}).get("per_lux_bin_map50")
        if bins:
            return list(bins)
    return []


def power_line(result: dict[str, Any]) -> str:
    """One sentence: where the watts come from, and the estimate warning when it is one."""
    p = result["power"]
    idle, after = p.get("idle") or {}, p.get("idle_after") or {}
    text = (f"**Power: ESTIMATED** ({p['source']}; scope `{p['scope']}`): no power sensor "
            "on this machine, so watts and every mJ/frame, FPS/W and TOPS/W below are a "
            "model of how busy the machine was, good for ranking variants, not a "
            "measurement." if p.get("estimated") else
            f"Power: measured by `{p['sensor']}` ({p['source']}; scope `{p['scope']}`).")
    if idle.get("watts") is not None:
        text += (f" Idle baseline: {_f(idle['watts'])} W over {_f(idle.get('seconds'), 'g')} s"
                 f" ({idle.get('when', '')})")
        if after.get("watts") is not None:
            text += f"; {_f(after['watts'])} W after the last window"
        text += "."
        drift = _idle_drift(idle.get("watts"), after.get("watts"))
        if drift is not None:
            text += (f" The two idle windows differ by {drift:.0%} (other load on the machine, "
                     "or clocks and temperature still raised after the work): compare entries "
                     "within this run only, and read the per-repeat ranges.")
    return text


def _idle_drift(before: float | None, after: float | None, limit: float = 0.2
                ) -> float | None:
    """Relative difference of the idle baselines when it exceeds ``limit``, else None."""
    if before is None or after is None or max(before, after) <= 0:
        return None
    drift = abs(after - before) / max(before, after)
    return drift if drift > limit else None


def _header(result: dict[str, Any]) -> list[str]:
    env, cfg, src = result["environment"], result["config"], result["source"]
    machine = env.get("machine", {})
    lines = [f"# Benchmark: {result.get('title', '')}", ""]
    if src.get("imported_from"):
        lines += [f"Imported from `{src['imported_from']}`: {src.get('note') or ''}", ""]
    versions = "; ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())
    lines += [
        f"Measured {env.get('date', '?')} with `{env.get('command', '?')}` (git "
        f"{env.get('git_revision') or 'revision not recorded'}). What ran: "
        f"{cfg.get('pipeline', '?')}"
        + (" (the running ROS node, fed over DDS)." if result["kind"] == "node" else "."),
        "",
        f"Machine: {env.get('gpu') or machine.get('cpu', '?')}, "
        f"{machine.get('logical_cores', '?')} logical cores, {machine.get('platform', '')}; "
        f"hardware profile `{(env.get('hardware_profile') or {}).get('name', '?')}`. "
        f"Backend {cfg['backend']} on {cfg['device']}"
        + (f" ({cfg['backend_reason']})" if cfg.get("backend_reason") else "") + "; "
        + versions + ".",
        "",
        power_line(result),
        "",
        f"Schedule: {cfg.get('schedule', '?')}; {cfg.get('order', '')}. "
        f"Frame: {cfg.get('frame', '?')}. MACs per frame: {_f(cfg.get('macs_per_frame'), ',')}.",
        "",
    ]
    return lines


def _frontier_lines(result: dict[str, Any]) -> list[str]:
    rows = {e["label"]: e for e in result["entries"]}
    if not result.get("frontier"):
        return ["No frontier: no entry has both energy per frame and mAP@0.5.", ""]
    lines = ["**Efficiency-accuracy frontier** (no other entry is both cheaper per frame "
             "and more accurate), cheapest first:", ""]
    for label in result["frontier"]:
        e = rows[label]
        acc = e.get("accuracy") or {}
        guard = {True: "within the guard", False: "FAILS the guard", None: "guard unknown"}[
            acc.get("within_guard")]
        lines.append(f"- `{label}`: {_f(e['efficiency'].get('mj_per_frame'))} mJ/frame, "
                     f"{_f(e.get('fps'), '.1f')} frames/s, mAP@0.5 {_f(acc.get('map50'), '.4f')}"
                     f" ({guard}, worst drop vs fp32 {_f(acc.get('worst_drop'), '.4f')})")
    return [*lines, ""]


def _speed_table(result: dict[str, Any]) -> list[str]:
    header = ["variant / profile", "node runs it", "frames/s (range)", "p50 ms", "p90 ms",
              "p95 ms", "p99 ms", "max ms", "W", "mJ/frame (range)", "mJ/frame above idle",
              "FPS/W", "TOPS/W"]
    rows = []
    for e in result["entries"]:
        lat, eff = e["latency_ms"], e["efficiency"]
        rows.append([
            f"`{e['label']}`", {True: "yes", False: "no", None: "n/a"}[e.get("served")],
            _with_range(e.get("fps"), e.get("fps_spread"), ".1f"),
            *(_f(lat.get(k), ".2f") for k in ("p50", "p90", "p95", "p99", "max")),
            _f(e["power"].get("mean_watts"), ".1f"),
            _with_range(eff.get("mj_per_frame"), eff.get("mj_per_frame_spread"), ".1f"),
            _f(eff.get("mj_per_frame_above_idle"), ".1f"), _f(eff.get("fps_per_watt"), ".3f"),
            _f(eff.get("tops_per_watt"), ".4f")])
    return _table(header, rows)


def _node_table(result: dict[str, Any]) -> list[str]:
    header = ["variant / profile", "peak frames/s (range)", "W at peak", "mJ/frame at peak",
              "FPS/W", "rate Hz", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "missed / sent",
              "jitter ms", "W at rate", "mJ/frame at rate", "above idle", "switch ms"]
    rows = []
    for e in result["entries"]:
        n = e["node"]
        at = n["at_rate"]
        lat = at["latency_ms"]
        jitter = at.get("jitter_ms")
        switch = [v for v in n.get("switch_ms") or [] if v is not None]
        rows.append([
            f"`{e['label']}`", _with_range(n.get("peak_fps"), n.get("peak_fps_spread"), ".1f"),
            _f(e["power"].get("mean_watts"), ".1f"), _f(e["efficiency"].get("mj_per_frame"),
                                                        ".1f"),
            _f(e["efficiency"].get("fps_per_watt"), ".3f"), _f(n.get("rate_hz"), "g"),
            *(_f(lat.get(k), ".1f") for k in ("p50", "p90", "p95", "p99")),
            f"{at.get('missed_frames')} / {at.get('frames_sent')}",
            "n/a" if not jitter else f"mean {_f(jitter.get('mean'))}, max "
            f"{_f(jitter.get('max'))}",
            _f(at.get("mean_watts"), ".1f"), _f(at.get("mj_per_frame"), ".1f"),
            _f(at.get("mj_per_frame_above_idle"), ".1f"),
            f"{min(switch):.0f}–{max(switch):.0f}" if switch else "n/a"])
    return _table(header, rows)


def _accuracy_table(result: dict[str, Any]) -> list[str]:
    bins = _bins(result)
    header = ["variant / profile", "mAP@0.5", *bins, "worst drop vs fp32", "guard",
              "frontier", "measured"]
    rows = []
    for e in result["entries"]:
        acc = e.get("accuracy") or {}
        per_bin = acc.get("per_lux_bin_map50") or {}
        rows.append([
            f"`{e['label']}`", _f(acc.get("map50"), ".4f"),
            *(_f(per_bin.get(b), ".4f") for b in bins), _f(acc.get("worst_drop"), ".4f"),
            {True: "pass", False: "FAIL", None: "n/a"}[acc.get("within_guard")],
            "**yes**" if e.get("frontier") else "",
            acc.get("how") or "not measured"])
    return _table(header, rows)


def result_markdown(result: dict[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The whole report; ``plots`` maps a caption to an image path relative to it."""
    lines = _header(result) + _frontier_lines(result)
    for caption, path in (plots or {}).items():
        lines += [f"![{caption}]({path})", ""]
    if result["kind"] == "node":
        lines += ["## Through the node", "",
                  "Peak: frames answered per second with the node always holding the next "
                  "frame (the feeder keeps a fixed number in flight); watts and mJ/frame at "
                  "peak come from the middle of that window. At rate: latency (image stamp "
                  "to detections received), missed frames (sent, never answered) and energy "
                  "per frame while the camera runs at the fixed rate.", ""]
        lines += _node_table(result)
    else:
        what = next(((e.get("fps_spread") or {}).get("what") for e in result["entries"]
                     if e.get("fps_spread")), "") or "per repeat"
        lines += ["## Speed and energy", "",
                  f"frames/s: frames over the windows' total time (range: {what}); "
                  "latency: every frame of every repeat; W: mean over the windows; "
                  "mJ/frame = 1000·E/N; above idle: (E − P_idle·T)/N; FPS/W = N/E; "
                  "TOPS/W = 2·MACs·N/E/1e12.", ""]
        lines += _speed_table(result)
        stages = [e for e in result["entries"] if e.get("stages_ms")]
        if stages:
            lines += ["", "Per-frame stages (mean ms): "
                      + "; ".join(f"`{e['label']}` "
                                  + "/".join(_f(e['stages_ms'].get(k)) for k in
                                             ("preprocess", "inference", "decode"))
                                  for e in stages) + " (preprocess/inference/decode)."]
    lines += ["", "## Accuracy", ""] + _accuracy_table(result)
    if result.get("skipped"):
        lines += ["", "## Left out", ""]
        lines += [f"- `{s['label']}`: {s['reason']}" for s in result["skipped"]]
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def compare_markdown(cmp: dict[str, Any], a_name: str, b_name: str) -> str:
    """Side by side with B/A ratios (what changed in the environment first)."""
    ctx = cmp["context"]
    lines = [f"# Benchmark comparison: B = `{b_name}` against A = `{a_name}`", ""]
    for key in ctx["a"]:
        mark = " **(differs)**" if key in ctx["differs"] else ""
        lines.append(f"- {key}: A {ctx['a'][key]} | B {ctx['b'][key]}{mark}")
    lines += ["", "Ratios are B / A: above 1 is more for B (better for frames/s, FPS/W, "
              "TOPS/W; worse for latency, watts and mJ/frame).", ""]
    header = ["variant / profile", "rows", "frames/s A", "B", "B/A", "p50 ms A", "B", "B/A",
              "p99 ms B/A", "W B/A", "mJ/frame A", "B", "B/A", "above idle B/A", "FPS/W B/A",
              "mAP@0.5 A", "B", "B − A"]
    rows = []
    for r in cmp["rows"]:
        rows.append([
            f"`{r['label']}`", r["in"], _f(r["fps"]["a"], ".1f"), _f(r["fps"]["b"], ".1f"),
            _f(r["fps"]["ratio"], ".2f"), _f(r["p50_ms"]["a"]), _f(r["p50_ms"]["b"]),
            _f(r["p50_ms"]["ratio"], ".2f"), _f(r["p99_ms"]["ratio"], ".2f"),
            _f(r["watts"]["ratio"], ".2f"), _f(r["mj_per_frame"]["a"], ".1f"),
            _f(r["mj_per_frame"]["b"], ".1f"), _f(r["mj_per_frame"]["ratio"], ".2f"),
            _f(r["mj_per_frame_above_idle"]["ratio"], ".2f"),
            _f(r["fps_per_watt"]["ratio"], ".2f"), _f(r["map50"]["a"], ".4f"),
            _f(r["map50"]["b"], ".4f"), _f(r["map50"]["diff"], "+.4f")])
    lines += _table(header, rows)
    lines += ["", f"Frontier A: {', '.join(cmp['frontier']['a']) or 'none'}; "
              f"frontier B: {', '.join(cmp['frontier']['b']) or 'none'}."]
    return "\n".join(lines) + "\n"
