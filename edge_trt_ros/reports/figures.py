"""The numbers a benchmark result is made of: latency summaries, spreads, the frontier.

Pure functions over plain values, shared by the runner, the GPU importer, the node mode and
the report writers, so every result computes percentiles and the Pareto frontier the same
way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = ("p50", "p90", "p95", "p99")
HISTOGRAM_BINS = 40


def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """min / p50 / p90 / p95 / p99 / max / mean of per-frame latencies (ms)."""
    if len(samples_ms) == 0:
        return dict.fromkeys(("min", *PERCENTILES, "max", "mean"))
    a = np.asarray(samples_ms, dtype=np.float64)
    out: dict[str, float | None] = {"min": _r(a.min())}
    for name in PERCENTILES:
        out[name] = _r(float(np.percentile(a, float(name[1:]))))
    out["max"] = _r(a.max())
    out["mean"] = _r(a.mean())
    return out


def latency_histogram(samples_ms: Sequence[float], bins: int = HISTOGRAM_BINS
                      ) -> dict[str, list[Any]] | None:
    """Counts in log-spaced bins from min to max: enough to redraw the distribution from
    the JSON alone (the plots do), without storing every sample."""
    if len(samples_ms) < 2:
        return None
    a = np.asarray(samples_ms, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not lo > 0 or hi <= lo:
        hi = lo * 1.001 + 1e-6
    edges = np.geomspace(max(lo, 1e-6), hi, bins + 1)
    counts, _ = np.histogram(a, bins=edges)
    return {"edges_ms": [round(float(e), 4) for e in edges],
            "counts": [int(c) for c in counts]}


def spread(values: Sequence[float | None], what: str, digits: int = 3) -> dict[str, Any]:
    """One figure over repeats, with what a single value means (for the report's ranges)."""
    return {"values": [_r(v, digits) if v is not None else None for v in values],
            "what": what}


def spread_range(s: dict[str, Any] | None) -> tuple[float, float] | None:
    """(min, max) of a spread's values, None when it has fewer than two."""
    values = [v for v in (s or {}).get("values", []) if v is not None]
    return (min(values), max(values)) if len(values) >= 2 else None


def pareto_frontier(points: dict[str, tuple[float | None, float | None]]) -> list[str]:
    """Labels whose (cost, quality) no other point beats: cost lower-or-equal and quality
    higher-or-equal with one of them strictly. Points missing either value are left out.
    Returned cheapest first."""
    known = {k: (c, q) for k, (c, q) in points.items()
             if c is not None and q is not None and math.isfinite(c) and math.isfinite(q)}
    front = []
    for label, (c, q) in known.items():
        dominated = any(c2 <= c and q2 >= q and (c2 < c or q2 > q)
                        for other, (c2, q2) in known.items() if other != label)
        if not dominated:
            front.append(label)
    return sorted(front, key=lambda k: (known[k][0], -known[k][1]))


def ratio(b: float | None, a: float | None) -> float | None:
    """b / a, None where either is missing or a is zero."""
    if a is None or b is None or a == 0:
        return None
    return b / a
