#!/usr/bin/env python3
"""The node against the bare pipeline, engine switches at 30 fps, latency per variant.

    source scripts/env.sh
    python bench/node.py --quick          # about 4.5 minutes on 2 cores
    python bench/node.py                  # longer windows, 3 repeats

Writes ``results/bench/node.json`` with:

* ``throughput``: per variant (fp32 and the guard-passing int8 the node picks)
  ``bare_alone_fps`` (``Detector.detect`` on the same 640x480 bgr8 frame, viewed as the node
  views a message, in the same configuration: one detector per worker thread, on the cores
  the node pins its workers to), then ``node_fps`` (frames answered per second by the node
  while bench/feeder.py feeds it as fast as it takes frames: the feeder keeps one frame more
  than the node has workers unanswered, so a frame waits whenever a worker frees up and none
  is replaced; ``fed_fps`` is the rate that came to, ``replaced`` what the node's mailbox
  replaced meanwhile) and ``bare_fps`` (the bare pipeline again while the same publisher
  sends at the same rate into a subscriber process that discards the frames, so both runs
  share the machine alike; ``bare_publisher_fps`` is the rate that publisher kept);
  ``ratio`` = node / bare.
  Variants and the three measurements interleave, repeated ``--repeats`` times: the
  medians and every repeat are recorded. Bar: ratio >= 0.90.
* ``int8_over_fp32_node``: node frames/s of int8 over fp32 (bar >= 2.0).
* ``switch``: at 30 fps, a cycle through every (precision, fusion profile) pair the backend
  runs: ``switch_ms_p50``/``switch_ms_max`` (bar <= 250), frames sent/answered/lost (bar 0),
  lost frames per pair and within 300 ms of a switch, the node's resident memory; the same
  cycle again on a node that keeps every engine ready (``kept_ready``: ``keep_ready:
  [all]``), and on it at 0.6 x the slowest pair's rate (``kept_ready_sustained``: frames
  lost there are the switches' own); ``bare_alone_fps_by_pair``, what each pair sustains
  here (near 30 fps a pair loses frames to the stream, switch or not).
* ``latency_30fps``: end-to-end p50/p95 per variant (image stamp to detections received).

The node runs in the configuration of ``config/detector.yaml`` unless ``--workers`` /
``--threads`` / ``--no-pin`` override it (the JSON records which).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_trt_ros.choices import PRECISIONS
from edge_trt_ros.dataset import render_sample
from edge_trt_ros.detector import Detector
from edge_trt_ros.reports.environment import environment_record
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.ros.processes import start_detector
from edge_trt_ros.runtime.affinity import pin_this_thread, placement
from edge_trt_ros.runtime.detector_runtime import RuntimeConfig, plan_for
from edge_trt_ros.runtime.ready import every_pair
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import image_view
from edge_trt_ros.vision.letterbox import run_opencv_on_callers

ROOT = Path(__file__).resolve().parents[1]
FEEDER = ROOT / "bench" / "feeder.py"
TOPIC = "/bench_camera/image_raw"


def feeder(mode: str, seconds: float, out: Path | None = None, **options: object
           ) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(FEEDER), "--mode", mode, "--seconds", f"{seconds:g}",
           "--topic", TOPIC]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    if out is not None:
        cmd += ["--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def feed(mode: str, seconds: float, tmp: Path, **options: object) -> dict[str, Any]:
    out = tmp / f"feed-{time.monotonic_ns()}.json"
    proc = feeder(mode, seconds, out, **options)
    try:
        _, err = proc.communicate(timeout=seconds + 180)
    except subprocess.TimeoutExpired:
        proc.kill()  # left running, it would load every later measurement
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"feeder failed ({proc.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def wait_active(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until the detector's log says it is active; raises with the log's tail if it exits
    or takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "active: subscribed to" in log.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"detector did not start:\n{log.read_text()[-3000:]}")


class NodeProcess:
    """The detector as the launch file starts it, on the bench camera topic."""

    def __init__(self, tmp: Path, params: dict[str, str]) -> None:
        self.log = tmp / f"detector-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = start_detector(TOPIC, backend="onnxruntime", extra_params=params,
                                       stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_active(self.proc, self.log, timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def switch(precision: str, profile: str, tmp: Path) -> None:
    """Put the running node on a variant (a one-entry switch cycle with no frames)."""
    r = feed("switch", 0, tmp, switch_cycle=json.dumps([[precision, profile]]))
    if not r["switches"] or not r["switches"][0].get("success"):
        raise RuntimeError(f"switch to {precision}/{profile} failed: {r['switches']}")


def bench_frame() -> np.ndarray:
    rgb = render_sample(30_000_000, width=640, height=480).image
    return np.ascontiguousarray(rgb[:, :, ::-1])


def bare_fps(config: RuntimeConfig, precision: str, seconds: float,
             profile: str = "max") -> float:
    """Frames/s of ``Detector.detect`` in the node's configuration: one detector per worker
    thread, each on the same bgr8 frame viewed the way the node views a message, with
    OpenCV on the calling threads and each thread on the cores the node pins its worker to."""
    run_opencv_on_callers()
    plan = plan_for(config, precision, profile)
    pixels = bench_frame()
    data = pixels.tobytes()
    workers, _ = config.workers_for("cpu")
    cores = config.worker_cores("cpu")
    detectors = [Detector.from_spec(plan.spec, config.decode) for _ in range(workers)]
    counts = [0] * len(detectors)
    start = threading.Barrier(len(detectors) + 1)
    end_at: list[float] = []

    def loop(i: int) -> None:
        det = detectors[i]
        if i < len(cores):
            pin_this_thread(cores[i])
        view = image_view(data, "bgr8", 480, 640, 1920)
        for _ in range(3):
            det.detect(view)
        start.wait()
        while time.monotonic() < end_at[0]:
            det.detect(view)
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(detectors))]
    for t in threads:
        t.start()
    time.sleep(0.5)
    end_at.append(time.monotonic() + seconds)
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for d in detectors:
        d.release()
    return sum(counts) / elapsed


def bare_beside_publisher(config: RuntimeConfig, precision: str, seconds: float, hz: float,
                          tmp: Path) -> tuple[float, float]:
    """``bare_fps`` while bench/feeder.py publishes at ``hz`` into a sink process on a topic
    the node does not read: the camera's and the transport's load, without the node. Returns
    (bare fps, the rate the publisher kept); raises when the publisher did not run through
    the whole bare measurement."""
    topic = TOPIC + "_sink"
    tag = time.monotonic_ns()
    out, ready = tmp / f"publish-{tag}.json", tmp / f"publish-{tag}.ready"
    sink = feeder("sink", 600.0, topic=topic)  # stopped below, after the publisher
    pub_s = seconds + 8.0  # covers the detectors' start and warm-up before the window
    pub = feeder("publish", pub_s, out, hz=f"{hz:.2f}", topic=topic, ready_file=ready)
    try:
        deadline = time.monotonic() + 60.0
        while not ready.exists():
            if pub.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare run's publisher did not start: "
                                   f"{pub.communicate(timeout=30)[1].decode()[-2000:]}")
            time.sleep(0.05)
        t0 = time.monotonic()
        bare = bare_fps(config, precision, seconds)
        t1 = time.monotonic()
        _, err = pub.communicate(timeout=pub_s + 60)
        if pub.returncode != 0:
            raise RuntimeError(f"the bare run's publisher failed ({pub.returncode}): "
                               f"{err.decode()[-2000:]}")
    finally:
        for proc in (pub, sink):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    published: dict[str, Any] = json.loads(out.read_text())
    start, end = published["publish_window_monotonic"]
    if not (start <= t0 and t1 <= end):
        raise RuntimeError(f"the publisher ran {start:.2f}-{end:.2f}, not through the bare "
                           f"run {t0:.2f}-{t1:.2f}: raise its margin")
    return bare, float(published["sent_fps"])


def node_config(args: argparse.Namespace) -> tuple[RuntimeConfig, dict[str, str]]:
    """The runtime configuration the node runs with (params file + overrides)."""
    import yaml

    params = yaml.safe_load((ROOT / "config" / "detector.yaml").read_text())["/**"][
        "ros__parameters"]
    workers = params["workers"] if args.workers is None else args.workers
    threads = params["intra_op_threads"] if args.threads is None else args.threads
    pin = params["pin_workers"] and not args.no_pin
    overrides = {"workers": str(workers), "intra_op_threads": str(threads),
                 "pin_workers": str(pin).lower(), "input_qos.reliability": "reliable",
                 "input_qos.depth": "10"}
    model = str(find_resource(DEFAULT_MODEL))
    config = RuntimeConfig(model_path=model, backend="onnxruntime", device="cpu",
                           workers=workers, intra_op_threads=threads, pin_workers=pin,
                           shipped_model=model,
                           decode=DecodeParams(params["confidence_threshold"],
                                               params["nms_iou_threshold"],
                                               params["max_detections"]))
    return config, overrides


def lost_per_interval(got: dict[str, Any]) -> list[dict[str, Any]]:
    """Frames lost while each (precision, profile) ran, and how many of them were sent
    within 300 ms of the switch to it: a variant too slow for 30 fps loses frames all
    along, a switch that costs frames loses them around its own moment."""
    starts = [(s["sent_at"], s["to"]) for s in got["switches"] if s.get("success")]
    out = []
    for i, (start, to) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else float("inf")
        lost = [t for t in got["lost_sent_at"] if start <= t < end]
        out.append({"to": to, "lost": len(lost),
                    "lost_near_switch": sum(1 for t in lost if t - start < 0.3),
                    "seconds": None if end == float("inf") else round(end - start, 2)})
    return out


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (Linux), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def switch_cycle(node: NodeProcess, pairs: list[list[str]], every_s: float,
                 tmp: Path, hz: float = 30.0) -> dict[str, Any]:
    """A ``hz`` stream while ``~/switch_engine`` cycles through ``pairs`` from fp32/max."""
    switch("fp32", "max", tmp)
    got = feed("rate", every_s * (len(pairs) + 1) + 0.5, tmp, hz=hz,
               switch_cycle=json.dumps(pairs), switch_every_s=every_s, drain_s=5)
    ms = [s["switch_ms"] for s in got["switches"]
          if s.get("success") and s.get("switch_ms") is not None]
    per_pair = lost_per_interval(got)
    return {
        "pairs": pairs, "switches": got["switches"],
        "switch_ms_p50": median(ms), "switch_ms_max": max(ms) if ms else float("nan"),
        "switches_failed": sum(1 for s in got["switches"] if not s.get("success")),
        # answered only when sent again: DDS dropped the first response
        "answers_lost": sum(1 for s in got["switches"] if s.get("answer_lost")),
        "frames_sent": got["frames_sent"], "frames_answered": got["frames_answered"],
        "frames_lost": got["frames_lost"], "rate_hz": hz,
        "lost_by_interval": per_pair, "node_counters": got.get("node_counters"),
        "lost_within_300ms_of_a_switch": sum(i["lost_near_switch"] for i in per_pair),
        "node_rss_mb": rss_mb(node.proc.pid),
    }


def print_cycle(title: str, r: dict[str, Any]) -> None:
    ok = [s for s in r["switches"] if s.get("success")]
    print(f"  {title}: {len(ok)} switches, p50 {r['switch_ms_p50']:.0f} ms, max "
          f"{r['switch_ms_max']:.0f} ms; frames sent {r['frames_sent']}, lost "
          f"{r['frames_lost']} ({r['lost_within_300ms_of_a_switch']} within 300 ms of a "
          f"switch); node RSS {r['node_rss_mb']} MB", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    config, overrides = node_config(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_node."))
    overrides["engine_cache_dir"] = str(tmp / "cache")
    window, repeats = (5.0, 2) if args.quick else (args.window_s, args.repeats)
    parts = set(args.parts.split(","))
    variants = ["fp32", "int8"]
    raw: dict[str, dict[str, list[float]]] = {
        v: {"node_fps": [], "bare_fps": [], "bare_alone_fps": [], "ratio": [],
            "fed_fps": [], "bare_publisher_fps": [], "replaced": []} for v in variants}
    workers, threads = config.workers_for("cpu")
    pinned = placement(config.worker_cores("cpu"))
    print(f"node benchmark: {workers} worker(s) x {threads or 'all'} thread(s), {pinned}, "
          f"window {window:g} s x {repeats} repeats", flush=True)
    node = NodeProcess(tmp, overrides)
    try:
        node.wait_ready()
        feed("adaptive", 2.0, tmp)  # warm the DDS path
        for r, v in itertools.product(range(repeats) if "throughput" in parts else (),
                                      variants):
            alone = bare_fps(config, v, window)
            switch(v, "max", tmp)
            got = feed("adaptive", window, tmp, inflight=workers + 1, drain_s=1.0)
            rate = got["sent_fps"]
            bare, published = bare_beside_publisher(config, v, window, rate, tmp)
            raw[v]["bare_alone_fps"].append(alone)
            raw[v]["fed_fps"].append(got["sent_fps"])
            raw[v]["replaced"].append(got.get("node_counters", {}).get("frames_replaced", -1))
            raw[v]["node_fps"].append(got["frames_answered"] / got["seconds"])
            raw[v]["bare_fps"].append(bare)
            raw[v]["bare_publisher_fps"].append(published)
            raw[v]["ratio"].append(raw[v]["node_fps"][-1] / bare)
            print(f"  repeat {r + 1} {v}: node {raw[v]['node_fps'][-1]:.1f} fps (fed "
                  f"{got['sent_fps']:.1f}), bare {bare:.1f} with the publisher at "
                  f"{published:.1f}, "
                  f"{alone:.1f} alone", flush=True)
        latency = {}
        for v in PRECISIONS if "latency" in parts else ():
            switch(v, "max", tmp)
            got = feed("rate", window, tmp, hz=30)
            latency[v] = {"p50_ms": got["latency_ms"]["p50"],
                          "p95_ms": got["latency_ms"]["p95"],
                          "frames_sent": got["frames_sent"], "frames_lost": got["frames_lost"],
                          "node_counters": got.get("node_counters")}
            print(f"  30 fps {v}: end-to-end p50 {latency[v]['p50_ms']:.1f} ms, p95 "
                  f"{latency[v]['p95_ms']:.1f} ms, lost {got['frames_lost']}", flush=True)
        switch_result: dict[str, Any] = {}
        pairs = [list(pair) for pair in every_pair()] if "switch" in parts else []
        pairs = pairs[1:] + pairs[:1]  # start away from fp32/max, end on it
        every = 1.0 if args.quick else 2.0
        if pairs:
            # "between cached variants": an unmeasured cycle puts every pair in the engine cache
            switch("fp32", "max", tmp)
            feed("switch", 0, tmp, switch_cycle=json.dumps(pairs))
            switch_result = switch_cycle(node, pairs, every, tmp)
            print_cycle("switch cycle at 30 fps, engines opened on demand", switch_result)
    finally:
        node.stop()
    if pairs:
        # What each pair sustains here: where it is under 30 fps the stream outruns it.
        capacity = {}
        for precision, profile in pairs:
            capacity[f"{precision}/{profile}"] = round(
                bare_fps(config, precision, 1.5 if args.quick else 3.0, profile), 1)
        switch_result["bare_alone_fps_by_pair"] = capacity
        print("  bare frames/s per pair (alone): " + ", ".join(
            f"{k} {v:.0f}" for k, v in capacity.items()), flush=True)
        # The same cycle on a node that keeps every engine ready (keep_ready: [all]), at
        # 30 fps and at a rate every pair sustains with room (0.6 x the slowest alone).
        kept = NodeProcess(tmp, overrides | {"keep_ready": "[all]"})
        try:
            kept.wait_ready(timeout=120.0)
            feed("adaptive", 2.0, tmp)
            switch_result["kept_ready"] = switch_cycle(kept, pairs, every, tmp)
            print_cycle("the same cycle, keep_ready: [all]", switch_result["kept_ready"])
            hz = max(1.0, float(int(0.6 * min(capacity.values()))))
            switch_result["kept_ready_sustained"] = switch_cycle(kept, pairs, every, tmp, hz)
            print_cycle(f"keep_ready: [all] at {hz:g} fps, which every pair sustains",
                        switch_result["kept_ready_sustained"])
        finally:
            kept.stop()
    throughput = {v: {k: median(vals) for k, vals in m.items()} | {"repeats": m}
                  for v, m in raw.items()}
    int8_ratio = [i / f for i, f in zip(raw["int8"]["node_fps"], raw["fp32"]["node_fps"],
                                        strict=True)]
    return {
        "schema": "edge_trt_ros.bench.node/1",
        "config": {"workers": workers, "intra_op_threads_per_worker": threads,
                   "pin_workers": config.pin_workers, "placement": pinned,
                   "workers_param": config.workers, "intra_op_threads_param":
                   config.intra_op_threads,
                   "window_s": window, "repeats": repeats, "frame": "640x480 bgr8",
                   "input_qos": "reliable, depth 10", "backend": "onnxruntime (cpu)",
                   "feed": f"adaptive, {workers + 1} frames unanswered",
                   "int8_variant": plan_for(config, "int8", "max").variant.name},
        "throughput": throughput,
        "parts": sorted(parts),
        "int8_over_fp32_node": median(int8_ratio) if int8_ratio else None,
        "int8_over_fp32_node_repeats": int8_ratio,
        "switch": switch_result,
        "latency_30fps": latency,
        "bars": {"ratio_min": 0.90, "int8_over_fp32_node_min": 2.0, "switch_ms_max": 250,
                 "frames_lost": 0},
        "environment": environment_record({"model": config.model_path}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 s windows, 2 repeats")
    p.add_argument("--window-s", type=float, default=15.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="override the params file's")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads per worker")
    p.add_argument("--no-pin", action="store_true",
                   help="workers (and the bare threads) unpinned: pin_workers false")
    p.add_argument("--parts", default="throughput,latency,switch",
                   help="which measurements (comma-separated), for a partial re-run")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "node.json")
    args = p.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
