"""PNG plots of a benchmark result, readable without the tool (matplotlib, Agg backend).

* ``frontier.png``: energy per frame against mAP@0.5, one point per variant/profile; the
  Pareto frontier highlighted, joined and labelled; the accuracy guard drawn as a line and
  entries failing it crossed out.
* ``throughput_power.png``: frames/s against watts with lines of equal FPS/W and the idle
  baseline.
* ``latency.png``: the per-frame latency distribution of every entry (from the stored
  histogram where there is one) with its p50/p90/p95/p99/max marked.

Every plot says on its face where the watts came from, and in large letters when they are
estimated. Everything is drawn from the result JSON alone, so a stored result re-plots the
same (``edge-trt benchmark --report RESULT.json``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from edge_trt_ros.variants.manifest import MAX_MAP50_DROP  # noqa: E402

MARKERS = {"max": "o", "balanced": "s", "conservative": "^", "none": "v"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf")
ESTIMATED_COLOR = "#c00000"
DPI = 130

PLOT_FILES = {"frontier": "frontier.png", "throughput_power": "throughput_power.png",
              "latency": "latency.png"}


# the shipped variant names keep their colour in every plot, so two reports read alike
FIXED_COLORS = {"fp32": PALETTE[0], "fp16": PALETTE[1], "int8-ort": PALETTE[2],
                "int8-trt": PALETTE[3]}


def _colors(result: dict[str, Any]) -> dict[str, str]:
    names = list(dict.fromkeys(e["variant"] for e in result["entries"]))
    spare = [c for c in PALETTE if c not in FIXED_COLORS.values()]
    others = [n for n in names if n not in FIXED_COLORS]
    return {n: FIXED_COLORS.get(n) or spare[others.index(n) % len(spare)] for n in names}


def _subtitle(result: dict[str, Any]) -> str:
    env, cfg, p = result["environment"], result["config"], result["power"]
    machine = env.get("gpu") or env.get("machine", {}).get("cpu", "?")
    where = f"{machine}, {cfg['backend']} on {cfg['device']}"
    how = (f"power ESTIMATED ({p['sensor']})" if p.get("estimated")
           else f"power: {p['sensor']}, scope {p['scope']}")
    src = result.get("source") or {}
    tool = f"imported from {src['imported_from']}" if src.get("imported_from") else \
        str(src.get("tool", ""))
    return f"{where}; {how}; {str(env.get('date', ''))[:10]}; {tool}"


def _mark_estimated(ax: Axes, result: dict[str, Any]) -> None:
    p = result["power"]
    if not p.get("estimated"):
        return
    ax.text(0.5, 0.5, "ESTIMATED\nPOWER", transform=ax.transAxes, fontsize=44,
            color=ESTIMATED_COLOR, alpha=0.13, ha="center", va="center", rotation=18,
            fontweight="bold", zorder=0)
    ax.text(0.01, 0.99, "ESTIMATED power: no power sensor here; watts = idle + "
            "utilisation x (TDP - idle)\nfrom the hardware profile. Ranks variants, is not a "
            "measurement.", transform=ax.transAxes, fontsize=8.5, color=ESTIMATED_COLOR,
            va="top", ha="left", fontweight="bold",
            bbox={"facecolor": "white", "edgecolor": ESTIMATED_COLOR, "alpha": 0.9})


def _legends(ax: Axes, result: dict[str, Any], colors: dict[str, str],
             extra: list[Line2D] | None = None) -> None:
    """Variant colours and profile markers, outside the axes on the right (never over a
    point)."""
    variants = [Line2D([], [], ls="", marker="o", color=c, label=n) for n, c in colors.items()]
    profiles = [Line2D([], [], ls="", marker=m, color="0.35", label=p)
                for p, m in MARKERS.items()
                if any(e["fusion_profile"] == p for e in result["entries"])]
    first = ax.legend(handles=variants + (extra or []), title="variant", loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=profiles, title="fusion profile", loc="lower left",
              bbox_to_anchor=(1.01, 0.0), fontsize=8, title_fontsize=8)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_frontier(result: dict[str, Any], path: Path) -> Path:
    """Energy per frame vs mAP@0.5 with the frontier joined and labelled."""
    colors = _colors(result)
    entries = result["entries"]
    points = [(e, e["efficiency"].get("mj_per_frame"), (e.get("accuracy") or {}).get("map50"))
              for e in entries]
    known = [(e, x, y) for e, x, y in points if x is not None and y is not None]
    fig, ax = plt.subplots(figsize=(10.5, 6.8))
    scope = result["power"].get("scope", "")
    node = result["kind"] == "node"
    xlabel = (f"energy per frame, mJ ({'at peak throughput through the node, ' if node else ''}"
              f"whole-'{scope}' power)")
    if not known:  # no accuracy anywhere: the energy ranking alone, and what to run
        order = sorted(((e, x) for e, x, _ in points if x is not None), key=lambda t: t[1])
        ax.barh([e["label"] for e, _ in order], [x for _, x in order],
                color=[colors[e["variant"]] for e, _ in order])
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title("Energy per frame (mAP@0.5 not measured: run `edge-trt benchmark "
                     "--evaluate 200` for the frontier)\n" + _subtitle(result), fontsize=9)
        _mark_estimated(ax, result)
        return _save(fig, path)
    front = [lab for lab in result.get("frontier", [])]
    by_label = {e["label"]: (e, x, y) for e, x, y in known}
    for e, x, y in known:
        on = e["label"] in front
        fails = (e.get("accuracy") or {}).get("within_guard") is False
        color = colors[e["variant"]]
        ax.scatter([x], [y], s=120 if on else 46, marker=MARKERS.get(e["fusion_profile"], "o"),
                   facecolors="none" if fails else color, alpha=1.0 if on else 0.6,
                   edgecolors="black" if on else color, linewidths=1.6 if on else 1.3,
                   zorder=3 if on else 2)
    if front:
        fx = [by_label[k][1] for k in front]
        fy = [by_label[k][2] for k in front]
        ax.step(fx, fy, where="post", color="black", lw=1.2, alpha=0.7, zorder=1,
                label="frontier")
        lines = ["FRONTIER, cheapest first"]
        for i, label in enumerate(front, start=1):  # a number at the point, the text aside
            e, x, y = by_label[label]
            ax.annotate(str(i), (x, y), xytext=(-4, 7), textcoords="offset points",
                        fontsize=9, fontweight="bold", ha="right")
            lines.append(f"{i}  {label}\n    {x:.1f} mJ/frame, {e.get('fps') or 0:.1f} fps,"
                         f"\n    mAP@0.5 {y:.4f}")
        ax.text(1.01, 0.62, "\n".join(lines), transform=ax.transAxes, fontsize=8,
                va="top", ha="left", family="monospace",
                bbox={"facecolor": "#f4f4f4", "edgecolor": "0.5"})
    refs = [y for e, _, y in known if e["precision"] == "fp32"]
    if refs:
        guard = max(refs) - MAX_MAP50_DROP
        ax.axhline(guard, color="#b22222", ls="--", lw=1)
        ax.text(ax.get_xlim()[1], guard, f"accuracy guard: fp32 - {MAX_MAP50_DROP * 100:.1f} "
                "pt overall (hollow marker: fails it overall or in a lux bin)  ",
                color="#b22222", fontsize=8, ha="right", va="bottom")
    xs = [x for _, x, _ in known]
    ax.set_xlim(0, max(xs) * 1.18)
    ys = [y for _, _, y in known]
    pad = max((max(ys) - min(ys)) * 0.25, 0.002)
    ax.set_ylim(min(min(ys), (max(refs) - MAX_MAP50_DROP) if refs else min(ys)) - pad,
                max(ys) + pad)
    ax.set_xlabel(xlabel + "   (lower is better)")
    frames = {(e.get("accuracy") or {}).get("frames") for e, _, _ in known}
    ax.set_ylabel("mAP@0.5, test split" + (f" ({', '.join(str(f) for f in frames if f)} "
                                           "frames)" if any(frames) else "")
                  + "   (higher is better)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Efficiency-accuracy frontier: {result.get('title', '')}\n"
                 + _subtitle(result), fontsize=9.5)
    _legends(ax, result, colors, [Line2D([], [], color="black", lw=1.2, label="frontier")])
    _mark_estimated(ax, result)
    return _save(fig, path)


def _nice_steps(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (lo > 0 and hi > lo):
        return [hi] if hi > 0 else []
    raw = math.log10(lo), math.log10(hi)
    steps = []
    for i in range(count):
        v = 10 ** (raw[0] + (raw[1] - raw[0]) * i / max(count - 1, 1))
        mag = 10 ** math.floor(math.log10(v))
        steps.append(round(v / mag * 2) / 2 * mag)
    return sorted(set(s for s in steps if s > 0))


def plot_throughput_power(result: dict[str, Any], path: Path) -> Path:
    """frames/s against mean watts; dashed lines of equal FPS/W."""
    colors = _colors(result)
    pts = [(e, e["power"].get("mean_watts"), e.get("fps")) for e in result["entries"]]
    pts = [(e, w, f) for e, w, f in pts if w is not None and f is not None]
    fig, ax = plt.subplots(figsize=(10.5, 6.8))
    if pts:
        for e, w, f in pts:
            ax.scatter([w], [f], s=120 if e.get("frontier") else 50,
                       marker=MARKERS.get(e["fusion_profile"], "o"),
                       color=colors[e["variant"]],
                       edgecolors="black" if e.get("frontier") else "none", linewidths=1.2,
                       zorder=3)
            if e.get("frontier") or len(pts) <= 8:
                ax.annotate(e["label"], (w, f), xytext=(6, 4), textcoords="offset points",
                            fontsize=8)
        ws = [w for _, w, _ in pts]
        fs = [f for _, _, f in pts]
        idle = (result["power"].get("idle") or {}).get("watts")
        x_hi = max(ws) * 1.25
        x_lo = 0.0
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(0, max(fs) * 1.2)
        effs = [f / w for _, w, f in pts if w > 0]
        for k in _nice_steps(min(effs) * 0.8, max(effs) * 1.2):
            xs = [x_lo, x_hi]
            ax.plot(xs, [k * x for x in xs], ls=":", color="0.55", lw=0.9, zorder=1)
            x_text = min(x_hi * 0.97, max(fs) * 1.15 / k)
            ax.text(x_text, k * x_text, f"{k:g} FPS/W", fontsize=7.5, color="0.4",
                    ha="right", va="bottom")
        if idle is not None:
            ax.axvline(idle, color="0.3", ls="--", lw=1)
            ax.text(idle, max(fs) * 0.02, f" idle {idle:.1f} W", fontsize=8, color="0.3",
                    va="bottom")
    node = result["kind"] == "node"
    ax.set_xlabel(f"mean power, W ('{result['power'].get('scope', '')}' scope)")
    ax.set_ylabel("peak frames/s through the node" if node else "frames/s (one stream)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Throughput vs power: {result.get('title', '')}\n" + _subtitle(result),
                 fontsize=9.5)
    _legends(ax, result, colors)
    _mark_estimated(ax, result)
    return _save(fig, path)


def plot_latency(result: dict[str, Any], path: Path) -> Path:
    """One row per entry, fastest on top: distribution shape, p50/p90/p95/p99 and max."""
    colors = _colors(result)
    rows = [e for e in result["entries"] if (e["latency_ms"] or {}).get("p50") is not None]
    rows.sort(key=lambda e: e["latency_ms"]["p50"])
    fig, ax = plt.subplots(figsize=(10.5, max(3.0, 0.42 * len(rows) + 1.6)))
    marks = (("p90", "|", "#444444"), ("p95", "|", "#d62728"), ("p99", "d", "#d62728"),
             ("max", "x", "black"))
    for i, e in enumerate(rows):
        y = len(rows) - 1 - i
        lat = e["latency_ms"]
        color = colors[e["variant"]]
        hist = e.get("latency_histogram")
        if hist and sum(hist["counts"]):
            edges, counts = hist["edges_ms"], hist["counts"]
            top = max(counts)
            xs, heights = [], []
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
                xs += [lo, hi]
                heights += [0.8 * c / top] * 2
            ax.fill_between(xs, [y] * len(xs), [y + h for h in heights], color=color,
                            alpha=0.45, step=None, lw=0)
        lo = lat.get("min") if lat.get("min") is not None else lat["p50"]
        hi = lat.get("max") if lat.get("max") is not None else lat.get("p99") or lat["p50"]
        ax.plot([lo, hi], [y, y], color=color, lw=1.5)
        ax.scatter([lat["p50"]], [y], s=45, color="white", edgecolors="black", zorder=4)
        for key, marker, mcolor in marks:
            if lat.get(key) is not None:
                ax.scatter([lat[key]], [y], marker=marker, s=60, color=mcolor, zorder=4,
                           linewidths=1.4)
    ax.set_yticks(range(len(rows)), [e["label"] for e in reversed(rows)], fontsize=8)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="both", labelsize=7.5)
    ax.set_xlabel("latency, ms: " + str(result["config"].get("latency_what", "per frame")))
    handles = [Line2D([], [], ls="", marker="o", markerfacecolor="white",
                      markeredgecolor="black", label="p50")]
    handles += [Line2D([], [], ls="", marker=m, color=c, label=k) for k, m, c in marks]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              framealpha=0.9)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.set_title(f"Latency per variant: {result.get('title', '')}\n" + _subtitle(result),
                 fontsize=9.5)
    return _save(fig, path)


def write_plots(result: dict[str, Any], out_dir: Path, prefix: str = "") -> dict[str, str]:
    """Every plot into ``out_dir``; returns caption -> file name (for the Markdown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for key, draw, caption in (
        ("frontier", plot_frontier, "Efficiency-accuracy frontier"),
        ("throughput_power", plot_throughput_power, "Throughput vs power"),
        ("latency", plot_latency, "Latency distribution per variant"),
    ):
        name = prefix + PLOT_FILES[key]
        draw(result, out_dir / name)
        made[caption] = name
    return made
