#!/usr/bin/env python3
"""A soak of the detector node: 30 fps with periodic engine switches for minutes or hours,
recording what a slow leak or a slow degradation would show.

    source scripts/env.sh
    python bench/soak.py                  # 1 minute (CI-sized)
    python bench/soak.py --minutes 30     # what docs/reliability.md quotes
    python bench/soak.py --minutes 480    # a shift

The node runs as the launch file starts it (bench/node.py's NodeProcess: params file,
ONNX Runtime, the shipped model and variants, reliable input QoS so the transport loses
nothing). This process feeds it with bench/feeder.py's Feeder (uniquely stamped 640x480
bgr8 frames at ``--hz``, answers collected per stamp) in segments of ``--segment-s``, and
calls ``~/switch_engine`` every ``--switch-every-s`` through ``--cycle``. Every
``--sample-s`` it reads the node's RSS, open file descriptors, threads and CPU time from
/proc. Each segment gives end-to-end latency percentiles and frames lost, and which were
lost to a switch: lost while one was being made (or within ``--switch-window-s`` after it
answered) beyond what the loss rate outside those windows predicts (over the whole run,
rounded). A machine that keeps up with the camera loses nothing outside them, and then every
frame lost inside counts; on one that does not, the figure is an estimate and noise can make
it 1 or 2. The node's own counters say why frames were lost (``replaced``: the engine was
busy with an earlier one, i.e. the machine did not keep up).

Pass/fail is by trend, not by one sample: after ``--warmup-s`` (default 20 % of the run,
at most 5 minutes: arenas and caches fill first) a least-squares line through the RSS
samples gives ``rss_growth_pct`` (the line's rise over the measured span, against its value
at the end of warm-up); open fds and threads get the same fit, latency p95 per segment
too. The run passes when rss_growth_pct <= ``--max-rss-growth-pct``, fds and threads do not
grow, the node never crashed (an exit status other than 0, or a traceback in its log), no
frame was lost to a switch and every switch succeeded. Writes ``results/bench/soak.json``:
``minutes``, ``rss_growth_pct``, ``frames_lost`` (all frames sent and never answered),
``frames_lost_to_switches``, ``crashes``, ``passed`` with the checks, and the series
(samples, segments with their switches). Exit status 1 when it fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feeder import Feeder, stream  # noqa: E402  (bench/ is scripts, not a package)
from node import TOPIC, NodeProcess  # noqa: E402

from edge_trt_ros.reports.environment import environment_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "soak.json"
DEFAULT_CYCLE = [["int8", "max"], ["fp16", "max"], ["fp32", "max"]]
MAX_CRASHES = 3  # restarts before the soak gives up (a supervisor would restart it too)


# -- the node's resources, from /proc ---------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the soak started
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float  # user + system CPU time of the node process


def sample(pid: int, t: float) -> Sample | None:
    """One reading of ``pid``'s resources; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    after_name = stat.rsplit(")", 1)[1].split()
    cpu_s = (int(after_name[11]) + int(after_name[12])) / ticks  # utime, stime
    return Sample(round(t, 2), int(fields["VmRSS"].split()[0]), fds,
                  int(fields["Threads"].strip()), round(cpu_s, 2))


class Sampler:
    """Reads the node's resources every ``period_s`` on a thread."""

    def __init__(self, period_s: float, t0: float) -> None:
        self.period_s = period_s
        self.t0 = t0
        self.samples: list[Sample] = []
        self.pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            pid = self.pid
            if pid is not None and (s := sample(pid, time.monotonic() - self.t0)) is not None:
                self.samples.append(s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- trends ------------------------------------------------------------------------------------
def trend(ts: list[float], ys: list[float], start: float) -> dict[str, Any]:
    """A least-squares line through the points at or after ``start``: its slope per hour,
    its rise over the span covered and that rise in percent of its value at ``start``."""
    pts = [(t, y) for t, y in zip(ts, ys, strict=True) if t >= start and math.isfinite(y)]
    if len(pts) < 3 or pts[-1][0] - pts[0][0] <= 0:
        return {"points": len(pts), "slope_per_hour": None, "growth": None,
                "growth_pct": None}
    t = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts], dtype=float)
    slope, intercept = np.polyfit(t, y, 1)
    span = float(t[-1] - t[0])
    at_start = float(slope * t[0] + intercept)
    growth = float(slope * span)
    return {"points": len(pts), "span_s": round(span, 1),
            "slope_per_hour": round(float(slope) * 3600, 4), "growth": round(growth, 3),
            "growth_pct": round(100.0 * growth / at_start, 3) if at_start > 0 else None,
            "first": float(y[0]), "last": float(y[-1])}


def switch_windows(segment: dict[str, Any], window_s: float) -> list[tuple[float, float]]:
    """(start, end) send times, within a feeder segment, during which a switch was being
    made or had answered less than ``window_s`` before."""
    return [(s["sent_at"] - 0.05, s["sent_at"] + (s.get("call_ms") or 0.0) / 1e3 + window_s)
            for s in segment["switches"] if "sent_at" in s]


def lost_to_switches(segment: dict[str, Any], window_s: float, hz: float) -> dict[str, Any]:
    """Frames a segment lost to its switches: those lost inside the switch windows beyond
    what the segment's loss rate outside them predicts (a machine that cannot keep up with
    the camera loses frames everywhere; bench/node.py attributes by the same windows)."""
    spans = switch_windows(segment, window_s)
    inside = sum(1 for t in segment["lost_sent_at"] if any(a <= t <= b for a, b in spans))
    seconds = max(segment["seconds"], 1e-9)
    in_s = min(seconds, sum(b - a for a, b in spans))
    out_frames = max(1.0, (seconds - in_s) * hz)
    rate = (len(segment["lost_sent_at"]) - inside) / out_frames  # lost per frame, elsewhere
    expected = rate * in_s * hz
    return {"inside": inside, "expected": round(expected, 3),
            "excess": round(max(0.0, inside - expected), 3)}


# -- the run -----------------------------------------------------------------------------------
def feeder_args(hz: float, seconds: float, cycle: list[list[str]],
                every_s: float) -> argparse.Namespace:
    return argparse.Namespace(mode="rate", seconds=seconds, hz=hz, inflight=2, topic=TOPIC,
                              detections="/detections",
                              efficiency="/detector/efficiency",
                              switch_service="/detector/switch_engine",
                              switch_cycle=json.dumps(cycle), switch_every_s=every_s,
                              drain_s=3.0, out=None, ready_file=None)


def reset(feeder: Feeder) -> None:
    """Forget the last segment's frames and switches (the node is not restarted)."""
    with feeder.lock:
        feeder.sent.clear()
        feeder.latency_ms.clear()
        feeder.received_at.clear()
    feeder.switches.clear()


def crashed(node: NodeProcess) -> str | None:
    """Why the node process counts as crashed, or None while it runs."""
    code = node.proc.poll()
    if code is None:
        return None
    return f"exited with status {code}: {node.log.read_text()[-2000:]}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    tmp = Path(tempfile.mkdtemp(prefix="bench_soak."))
    params = {"input_qos.reliability": "reliable", "input_qos.depth": "10",
              "engine_cache_dir": str(tmp / "cache")}
    duration_s = args.minutes * 60.0
    warmup_s = args.warmup_s if args.warmup_s is not None else min(300.0, 0.2 * duration_s)
    cycle: list[list[str]] = json.loads(args.cycle)
    t0 = time.monotonic()
    sampler = Sampler(args.sample_s, t0).start()
    crashes: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    node = NodeProcess(tmp, params)
    rclpy.init()
    feeder = Feeder(feeder_args(args.hz, args.segment_s, cycle, args.switch_every_s))
    executor = SingleThreadedExecutor()
    executor.add_node(feeder)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    logs: list[Path] = [node.log]
    k = 0  # switches sent so far: each segment continues the cycle
    counted = False  # the last node's exit is already a counted crash
    try:
        node.wait_ready()
        sampler.pid = node.proc.pid
        if not feeder.wait_for_subscriber(60.0):
            raise RuntimeError("the node never subscribed to the bench camera")
        while time.monotonic() - t0 < duration_s:
            left = duration_s - (time.monotonic() - t0)
            seconds = max(2.0, min(args.segment_s, left))
            seg_cycle = [cycle[(k + i) % len(cycle)]
                         for i in range(int(seconds // args.switch_every_s))]
            reset(feeder)
            start = time.monotonic() - t0
            got = stream(feeder, feeder_args(args.hz, seconds, seg_cycle,
                                             args.switch_every_s))
            k += len(got["switches"])  # the last one is not sent when the segment ends
            why = crashed(node)
            attribution = lost_to_switches(got, args.switch_window_s, args.hz)
            lost_sw = round(attribution["excess"])
            segments.append({
                "t_start": round(start, 2), "t_end": round(time.monotonic() - t0, 2),
                "frames_sent": got["frames_sent"], "frames_answered": got["frames_answered"],
                "frames_lost": got["frames_lost"], "frames_lost_to_switches": lost_sw,
                "lost_in_switch_windows": attribution,
                "latency_ms": {q: round(v, 2) for q, v in got["latency_ms"].items()},
                "switches": [{k2: v for k2, v in s.items() if k2 != "message"}
                             | {"message": str(s.get("message", ""))[:160]}
                             for s in got["switches"]],
                "node_counters": got.get("node_counters"),
                "lost_sent_at": got["lost_sent_at"][:200]})
            last = segments[-1]
            print(f"  {last['t_end'] / 60:6.1f} min: {got['frames_answered']}/"
                  f"{got['frames_sent']} answered, p50 {got['latency_ms']['p50']:.0f} ms p95 "
                  f"{got['latency_ms']['p95']:.0f} ms, {len(got['switches'])} switches, lost "
                  f"{got['frames_lost']} ({attribution['inside']} near a switch, "
                  f"{attribution['expected']:.1f} expected there)"
                  + (f", RSS {sampler.samples[-1].rss_kb / 1024:.0f} MiB, "
                     f"{sampler.samples[-1].fds} fds, {sampler.samples[-1].threads} threads"
                     if sampler.samples else ""), flush=True)
            if why is not None:
                crashes.append({"t": round(time.monotonic() - t0, 1), "why": why})
                print(f"  node crashed: {why[:300]}", file=sys.stderr, flush=True)
                if len(crashes) >= MAX_CRASHES:
                    counted = True
                    break
                node = NodeProcess(tmp, params)  # what a supervisor does
                logs.append(node.log)
                node.wait_ready()
                sampler.pid = node.proc.pid
                feeder.wait_for_subscriber(60.0)
    finally:
        sampler.stop()
        node.stop()
        executor.shutdown()
        spinner.join(timeout=10)
        feeder.destroy_node()
        rclpy.try_shutdown()
    if node.proc.returncode != 0 and not counted:  # SIGINT must end it with status 0
        crashes.append({"t": round(time.monotonic() - t0, 1),
                        "why": f"stopping: exit status {node.proc.returncode}"})
    for log in logs:
        text = log.read_text()
        if "Traceback" in text:
            crashes.append({"t": None, "why": f"traceback in {log.name}: "
                            + text[text.index("Traceback"):][:1500]})
    return summarize(args, segments, sampler.samples, crashes, warmup_s,
                     time.monotonic() - t0)


def summarize(args: argparse.Namespace, segments: list[dict[str, Any]],
              samples: list[Sample], crashes: list[dict[str, Any]], warmup_s: float,
              elapsed_s: float) -> dict[str, Any]:
    ts = [s.t for s in samples]
    rss = trend(ts, [s.rss_kb for s in samples], warmup_s)
    fds = trend(ts, [s.fds for s in samples], warmup_s)
    threads = trend(ts, [s.threads for s in samples], warmup_s)
    mid = [(seg["t_start"] + seg["t_end"]) / 2 for seg in segments]
    p95 = trend(mid, [seg["latency_ms"]["p95"] for seg in segments], warmup_s)
    sent = sum(seg["frames_sent"] for seg in segments)
    lost = sum(seg["frames_lost"] for seg in segments)
    inside = sum(seg["lost_in_switch_windows"]["inside"] for seg in segments)
    expected = sum(seg["lost_in_switch_windows"]["expected"] for seg in segments)
    lost_sw = max(0, round(inside - expected))
    replaced = sum((seg.get("node_counters") or {}).get("frames_replaced", 0)
                   for seg in segments)
    switch_list = [s for seg in segments for s in seg["switches"]]
    failed_switches = [s for s in switch_list if not s.get("success")]
    growth = rss["growth_pct"]
    checks = {
        "rss_growth_pct <= max": growth is not None and growth <= args.max_rss_growth_pct,
        "open fds do not grow": fds["growth"] is not None and fds["growth"] < 1.0,
        "threads do not grow": threads["growth"] is not None and threads["growth"] < 1.0,
        "no crash": not crashes,
        "no frame lost to a switch": lost_sw == 0,
        "every switch succeeded": not failed_switches,
    }
    all_lat = [seg["latency_ms"] for seg in segments if seg["frames_answered"]]
    return {
        "schema": "edge_trt_ros.soak/1",
        "minutes": round(elapsed_s / 60.0, 2),
        "minutes_requested": args.minutes,
        "rss_growth_pct": growth,
        "frames_lost": lost,
        "frames_lost_to_switches": lost_sw,
        "frames_lost_in_switch_windows": inside,
        "frames_lost_expected_in_switch_windows": round(expected, 2),
        "frames_replaced_by_node": replaced,
        "frames_sent": sent,
        "crashes": len(crashes),
        "passed": all(checks.values()),
        "checks": checks,
        "settings": {"hz": args.hz, "segment_s": args.segment_s,
                     "switch_every_s": args.switch_every_s, "cycle": json.loads(args.cycle),
                     "warmup_s": round(warmup_s, 1), "sample_s": args.sample_s,
                     "switch_window_s": args.switch_window_s,
                     "max_rss_growth_pct": args.max_rss_growth_pct},
        "trends_after_warmup": {"rss_kb": rss, "fds": fds, "threads": threads,
                                "latency_p95_ms": p95},
        "switches": {"count": len(switch_list), "failed": len(failed_switches),
                     "switch_ms_p50": _median([s.get("switch_ms") for s in switch_list]),
                     "switch_ms_max": _max([s.get("switch_ms") for s in switch_list])},
        "latency_ms_median_of_segments": {
            q: _median([lat[q] for lat in all_lat]) for q in ("p50", "p95", "p99")},
        "crash_reports": crashes,
        "samples": [s.__dict__ for s in samples],
        "segments": segments,
        "environment": environment_record(),
    }


def _median(values: list[Any]) -> float | None:
    xs = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return round(float(np.median(xs)), 2) if xs else None


def _max(values: list[Any]) -> float | None:
    xs = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return round(max(xs), 2) if xs else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0, help="how long (default 1: CI)")
    p.add_argument("--hz", type=float, default=30.0, help="camera frames per second")
    p.add_argument("--segment-s", type=float, default=30.0,
                   help="feeder segment (one latency point each)")
    p.add_argument("--switch-every-s", type=float, default=10.0)
    p.add_argument("--cycle", default=json.dumps(DEFAULT_CYCLE),
                   help="JSON list of [precision, fusion_profile] switched through in turn")
    p.add_argument("--sample-s", type=float, default=2.0, help="resource sampling period")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="left out of the trends (default: 20%% of the run, at most 300 s)")
    p.add_argument("--switch-window-s", type=float, default=0.3,
                   help="a frame lost this soon after a switch answered counts as its loss")
    p.add_argument("--max-rss-growth-pct", type=float, default=5.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    print(f"soak: {args.minutes:g} min at {args.hz:g} fps, a switch every "
          f"{args.switch_every_s:g} s through {args.cycle}", flush=True)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak: {result['minutes']:.1f} min, RSS growth after warm-up "
          f"{result['rss_growth_pct']}%, frames lost {result['frames_lost']} of "
          f"{result['frames_sent']} ({result['frames_lost_to_switches']} to switches), "
          f"crashes {result['crashes']}: {'PASS' if result['passed'] else 'FAIL'} "
          f"{[k for k, ok in result['checks'].items() if not ok]} -> {args.out}", flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
