#!/usr/bin/env python3
"""Regenerate the summary tables of docs/reliability.md from the result files.

    source scripts/env.sh
    EDGE_TRT_FUZZ_REPORT=results/reliability/fuzz.json \\
    EDGE_TRT_RELIABILITY_REPORT=results/reliability/faults.json \\
        python -m pytest -q test/test_fuzz_images.py test/test_fuzz_inputs.py \\
        test/test_fuzz_models.py test/test_faults.py test/test_storm.py
    python bench/soak.py --minutes 30
    python bench/reliability_report.py          # rewrites the marked part of the page

Reads the fuzz case counts (``EDGE_TRT_FUZZ_REPORT``, test/fuzz_support.py), what the fault
and storm tests saw (``EDGE_TRT_RELIABILITY_REPORT``, test/node_probe.py) and
results/bench/soak.json, and replaces what lies between the ``reliability-report`` markers
of docs/reliability.md: inputs tried, faults injected, load held, duration soaked and what
was lost. A missing file gives a row saying how to make it. ``--check`` only says whether
the page is current (exit 1 when not).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- reliability-report:begin (bench/reliability_report.py writes this part) -->"
END = "<!-- reliability-report:end -->"
TMP_PATH = re.compile(r"/tmp/\S*/([^/\s]+)")  # keep the file name of a test's temp path


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def _cell(text: object, limit: int = 220) -> str:
    s = TMP_PATH.sub(r"\1", str(text)).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def summary(fuzz: dict[str, int] | None, faults: dict[str, Any] | None,
            soak: dict[str, Any] | None) -> list[str]:
    lines = ["| what | tried | result | lost |", "|---|---|---|---|"]
    if fuzz:
        total = sum(fuzz.values())
        lines.append(f"| inputs fuzzed | {total:,} cases over {len(fuzz)} properties "
                     "(counts below) | every case a value, a clear error or a counted drop | "
                     "- |")
    else:
        lines.append("| inputs fuzzed | not run: `EDGE_TRT_FUZZ_REPORT=... pytest "
                     "test/test_fuzz_*.py` | | |")
    found = (faults or {}).get("faults", {})
    if found:
        up = all(f.get("node_up") for f in found.values())
        back = all(f.get("recovered") for f in found.values())
        lost = sum(int(f.get("frames_lost", 0)) for f in found.values())
        lines.append(f"| faults injected into the running node | {len(found)} kinds (below) | "
                     f"node {'up' if up else 'DOWN'} in all, old engine serving, "
                     f"/diagnostics said it, {'recovered in all' if back else 'NOT recovered'}"
                     f" | {lost} frames |")
    else:
        lines.append("| faults injected | not run: `EDGE_TRT_RELIABILITY_REPORT=... pytest "
                     "test/test_faults.py` | | |")
    storm = (faults or {}).get("storm", {}).get("switching storm")
    if storm:
        lines.append(
            f"| switching storm | {storm['requests']:,} requests in {storm['seconds']:g} s "
            f"({storm['requests_per_s']}/s) from {storm['clients']} clients: "
            f"{storm['switch_engine_calls']} `~/switch_engine`, {storm['parameter_changes']} "
            f"parameter changes, a {storm['stream_hz']} fps stream | {storm['switches']} "
            f"switches, {storm['refusals']} refusals, all answered and logged, final state "
            f"= last switch everywhere | {storm['frames_lost']} of {storm['frames_sent']} "
            "frames |")
    else:
        lines.append("| switching storm | not run: `EDGE_TRT_RELIABILITY_REPORT=... pytest "
                     "test/test_storm.py` | | |")
    if soak:
        trends = soak.get("trends_after_warmup", {})
        fds, threads = trends.get("fds", {}), trends.get("threads", {})
        s = soak.get("settings", {})
        lines.append(
            f"| soak (`bench/soak.py`) | {soak['minutes']:g} min at {s.get('hz', 30):g} fps, "
            f"{soak['switches']['count']} switches (every {s.get('switch_every_s', '?'):g} s"
            f"), warm-up {s.get('warmup_s', 0):g} s left out | RSS growth "
            f"{soak['rss_growth_pct']}% (max {s.get('max_rss_growth_pct', 5):g}), open fds "
            f"{_growth(fds)}, threads {_growth(threads)}, {soak['crashes']} crashes, "
            f"{soak['switches']['failed']} failed switches: "
            f"**{'PASS' if soak['passed'] else 'FAIL'}** | {soak['frames_lost']:,} of "
            f"{soak['frames_sent']:,} frames ({soak['frames_lost_to_switches']} to switches; "
            f"{soak.get('frames_replaced_by_node', 0):,} replaced in the node: the engine was "
            "busy) |")
    else:
        lines.append("| soak | not run: `python bench/soak.py --minutes 30` | | |")
    return lines


def _growth(trend: dict[str, Any]) -> str:
    g = trend.get("growth")
    return "n/a" if g is None else f"{g:+.1f} over the fit ({trend.get('first', 0):.0f} -> " \
                                   f"{trend.get('last', 0):.0f})"


def fault_rows(faults: dict[str, Any] | None) -> list[str]:
    found = (faults or {}).get("faults", {})
    if not found:
        return []
    lines = ["", "| fault | injected by | what /diagnostics or the caller was told | "
             "frames lost | recovered |", "|---|---|---|---|---|"]
    for name, f in sorted(found.items()):
        lost = f.get("frames_lost", f"{f.get('frames_failed', 0)} failed (the fault)")
        lines.append(f"| {name} | {_cell(f.get('how', ''))} | {_cell(f.get('seen', ''))} | "
                     f"{lost} | {'yes' if f.get('recovered') else 'NO'} |")
    return lines


def fuzz_rows(fuzz: dict[str, int] | None) -> list[str]:
    if not fuzz:
        return []
    lines = ["", "| fuzzed input (property) | cases |", "|---|---|"]
    lines += [f"| {name} | {count:,} |" for name, count in sorted(fuzz.items())]
    return lines


def render(fuzz: dict[str, int] | None, faults: dict[str, Any] | None,
           soak: dict[str, Any] | None) -> str:
    return "\n".join([BEGIN, *summary(fuzz, faults, soak), *fault_rows(faults),
                      *fuzz_rows(fuzz), END])


def splice(page: str, block: str) -> str:
    if BEGIN not in page or END not in page:
        raise SystemExit(f"no {BEGIN!r} ... {END!r} markers in the page")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block + tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fuzz", type=Path, default=ROOT / "results/reliability/fuzz.json")
    p.add_argument("--faults", type=Path, default=ROOT / "results/reliability/faults.json")
    p.add_argument("--soak", type=Path, default=ROOT / "results/bench/soak.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs/reliability.md")
    p.add_argument("--check", action="store_true", help="only report whether it is current")
    args = p.parse_args(argv)
    block = render(_load(args.fuzz), _load(args.faults), _load(args.soak))
    page = args.docs.read_text()
    new = splice(page, block)
    if args.check:
        current = new == page
        print(f"{args.docs}: {'current' if current else 'out of date'}")
        return 0 if current else 1
    args.docs.write_text(new)
    print(f"{args.docs}: table rewritten from {args.fuzz.name}, {args.faults.name}, "
          f"{args.soak.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
