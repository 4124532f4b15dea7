"""Two benchmark results side by side: the same variant/profile rows, with B/A ratios.

Across devices or releases the question is "how much faster, how much cheaper per frame,
did accuracy move": rows are matched by label (``variant/profile``), ratios are B over A,
and the environment lines that differ are listed so a ratio is never read without knowing
what changed (machine, backend, power sensor, estimate or measurement).
"""

from __future__ import annotations

from typing import Any

from edge_trt_ros.reports.figures import ratio

FIGURES = (  # (name, path in an entry, lower is better)
    ("fps", ("fps",), False),
    ("p50_ms", ("latency_ms", "p50"), True),
    ("p99_ms", ("latency_ms", "p99"), True),
    ("watts", ("power", "mean_watts"), True),
    ("mj_per_frame", ("efficiency", "mj_per_frame"), True),
    ("mj_per_frame_above_idle", ("efficiency", "mj_per_frame_above_idle"), True),
    ("fps_per_watt", ("efficiency", "fps_per_watt"), False),
    ("tops_per_watt", ("efficiency", "tops_per_watt"), False),
)


def _get(entry: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = entry
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _map50(entry: dict[str, Any]) -> float | None:
    return (entry.get("accuracy") or {}).get("map50")


def _context(result: dict[str, Any]) -> dict[str, str]:
    env = result.get("environment", {})
    machine = env.get("machine", {})
    power = result.get("power", {})
    config = result.get("config", {})
    return {
        "machine": str(env.get("gpu") or machine.get("gpu") or machine.get("cpu", "?"))
        + f" ({machine.get('logical_cores', '?')} logical cores)",
        "backend": f"{config.get('backend')} on {config.get('device')}",
        "power": f"{power.get('sensor')} ({power.get('scope')})"
        + (", ESTIMATED" if power.get("estimated") else ""),
        "kind": str(result.get("kind")),
        "date": str(env.get("date")),
        "source": str((result.get("source") or {}).get("imported_from")
                      or (result.get("source") or {}).get("tool")),
        "window": str(config.get("window")),
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Rows of both results by label (A's order, then B-only ones), each with A, B and B/A
    for every figure and the mAP@0.5 difference."""
    a_rows = {e["label"]: e for e in a["entries"]}
    b_rows = {e["label"]: e for e in b["entries"]}
    labels = list(a_rows) + [k for k in b_rows if k not in a_rows]
    rows = []
    for label in labels:
        ea, eb = a_rows.get(label), b_rows.get(label)
        row: dict[str, Any] = {"label": label, "in": "both" if ea and eb else
                               "A only" if ea else "B only"}
        for name, path, _ in FIGURES:
            va = _get(ea, path) if ea else None
            vb = _get(eb, path) if eb else None
            row[name] = {"a": va, "b": vb, "ratio": ratio(vb, va)}
        ma, mb = (_map50(ea) if ea else None), (_map50(eb) if eb else None)
        row["map50"] = {"a": ma, "b": mb,
                        "diff": None if ma is None or mb is None else round(mb - ma, 6) + 0.0}
        rows.append(row)
    ca, cb = _context(a), _context(b)
    return {
        "context": {"a": ca, "b": cb,
                    "differs": [k for k in ca if ca[k] != cb[k]]},
        "rows": rows,
        "frontier": {"a": a.get("frontier", []), "b": b.get("frontier", [])},
        "lower_is_better": [name for name, _, low in FIGURES if low],
    }
