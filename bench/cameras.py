#!/usr/bin/env python3
"""Several cameras on one node, and what an idle node costs.

    source scripts/env.sh
    python bench/cameras.py --quick       # about 3.5 minutes on 2 cores
    python bench/cameras.py               # longer windows

Writes ``results/bench/cameras.json`` with:

* ``aggregate``: for 1, 2 and 4 cameras at 15 fps each (640x480 bgr8 rendered scenes, one
  feeder process publishing every camera, reliable QoS so the transport loses nothing), per
  camera the frames answered per second, end-to-end p50/p95 (image stamp to detections
  received, one clock) and frames lost (never answered); the total answered per second and
  its ratio to 1 camera, and the node's CPU (percent of one core, and ms per answered frame).
  Each camera count with ``batching`` off (cameras in turn) and, for 2 and 4, on (waiting
  frames of the cameras in one inference, on the variant's dynamic-batch copy); 4 cameras
  also synced (all publishing at the same instant), both ways; per camera the node's own
  count of frames that ran batched.
* ``idle``: one camera at 30 fps with ``lazy`` on: the node's CPU use (percent of one core,
  from /proc utime+stime, averaged over ``--idle-s`` = 20 s) and RSS, with nobody
  subscribed to its detections (the default: ``lazy_filter``, DDS drops the idle camera's
  frames), then with one subscriber, then nobody subscribed with ``lazy_filter`` off (frames
  delivered and let go) and with ``lazy_unsubscribe`` (the subscription dropped while idle).
  Bar: idle < 2 % of one core (``meets_bar``: the default configuration).

The node runs as the launch file starts it (params file, ONNX Runtime, fp32 unless
``--precision``), in the configuration of ``config/detector.yaml`` otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feeder import frames  # noqa: E402  (bench/feeder.py: the rendered bench frames)
from node import wait_active  # noqa: E402

from edge_trt_ros.reports.environment import environment_record  # noqa: E402
from edge_trt_ros.ros.processes import start_detector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def topics(n: int) -> list[str]:
    return [f"/bench_cam{i}/image_raw" for i in range(n)]


# -- the feeder (its own process: its own GIL and DDS stack) ------------------------------------
def feed(args: argparse.Namespace) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    cams = topics(args.cameras)
    rclpy.init()
    node = Node("bench_cameras_feeder")
    pubs = [node.create_publisher(Image, t, reliable) for t in cams]
    imgs = frames()
    lock = threading.Lock()
    sent: list[dict[int, float]] = [{} for _ in cams]
    latency: list[dict[int, float]] = [{} for _ in cams]

    def on_det(i: int, msg: Detection2DArray) -> None:
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with lock:
            if stamp in sent[i]:
                latency[i][stamp] = (now - stamp) / 1e6

    node_status: list[dict[str, str]] = [{} for _ in cams]  # newest per-camera diagnostics

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            for i, t in enumerate(cams):
                if st.name.endswith(f"camera {t}"):
                    node_status[i] = {kv.key: kv.value for kv in st.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    if args.subscribe:
        for i, t in enumerate(cams):
            node.create_subscription(Detection2DArray, t.rsplit("/", 1)[0] + "/detections",
                                     lambda m, i=i: on_det(i, m), QoSProfile(
                                         depth=100, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs):
        time.sleep(0.05)
    time.sleep(1.0)  # the node sees our detections subscriptions (lazy) before frames go out
    period = 1.0 / args.hz
    start = time.monotonic()
    k = 0
    while (t := start + k * period) < start + args.seconds:
        for i, pub in enumerate(pubs):  # spread over the period, or all at once (triggered)
            at = t if args.synced else t + i * period / len(pubs)
            time.sleep(max(0.0, at - time.monotonic()))
            msg = imgs[(k + i) % len(imgs)]
            now = node.get_clock().now()
            msg.header.stamp = now.to_msg()
            msg.header.frame_id = f"bench_cam{i}"
            with lock:
                sent[i][now.nanoseconds] = time.monotonic()
            pub.publish(msg)
        k += 1
    elapsed = time.monotonic() - start
    drain = time.monotonic() + (3.0 if args.subscribe else 0.0)
    while time.monotonic() < drain:
        with lock:
            if all(len(latency[i]) >= len(sent[i]) for i in range(len(cams))):
                break
        time.sleep(0.05)
    out = []
    with lock:
        for i, t in enumerate(cams):
            values = np.array(list(latency[i].values())) if latency[i] else np.array([np.nan])
            out.append({"topic": t, "sent": len(sent[i]), "answered": len(latency[i]),
                        "lost": len(sent[i]) - len(latency[i]),
                        "sent_fps": round(len(sent[i]) / elapsed, 2),
                        "answered_fps": round(len(latency[i]) / elapsed, 2),
                        "e2e_p50_ms": round(float(np.percentile(values, 50)), 1),
                        "e2e_p95_ms": round(float(np.percentile(values, 95)), 1),
                        # the node's own count: frames run in one inference with others
                        "node_frames_batched": int(node_status[i].get("frames_batched", -1)),
                        "node_frames_processed": int(node_status[i].get(
                            "frames_processed", -1))})
    executor.shutdown()
    spinner.join(timeout=10)
    node.destroy_node()
    rclpy.try_shutdown()
    args.out.write_text(json.dumps({"seconds": round(elapsed, 2), "cameras": out}))
    return 0


def feeder(cameras: int, hz: float, seconds: float, subscribe: bool, out: Path,
           synced: bool = False) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--feed", "--cameras", str(cameras), "--hz", str(hz),
           "--seconds", str(seconds), "--out", str(out)] + (["--subscribe"] if subscribe else []
                                                            ) + (["--synced"] if synced else [])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# -- the node ------------------------------------------------------------------------------------
class NodeProcess:
    def __init__(self, tmp: Path, cams: list[str], params: dict[str, str]) -> None:
        self.log = tmp / f"detector-{time.monotonic_ns()}.log"
        params = params | {"image_topics": "[" + ", ".join(cams) + "]",
                           "input_qos.reliability": "reliable", "input_qos.depth": "10"}
        with self.log.open("wb") as out:
            self.proc = start_detector("/unused/image", backend="onnxruntime",
                                       extra_params=params, stdout=out,
                                       stderr=subprocess.STDOUT)
        wait_active(self.proc, self.log, 90.0)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_feed(cameras: int, hz: float, seconds: float, subscribe: bool, tmp: Path,
             synced: bool = False) -> dict[str, Any]:
    out = tmp / f"feed-{time.monotonic_ns()}.json"
    proc = feeder(cameras, hz, seconds, subscribe, out, synced)
    _, err = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"feeder failed ({proc.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def aggregate(args: argparse.Namespace, tmp: Path, params: dict[str, str]) -> dict[str, Any]:
    """1, 2 and 4 cameras served in turn (``batching`` off), then 2 and 4 with batching,
    each run on a fresh node."""
    rows: dict[str, Any] = {}
    for n, batching, synced in ((1, False, False), (2, False, False), (4, False, False),
                                (2, True, False), (4, True, False), (4, False, True),
                                (4, True, True)):
        key = str(n) + ("_synced" if synced else "") + ("_batched" if batching else "")
        node = NodeProcess(tmp, topics(n), params | {"batching": str(batching).lower()})
        try:
            c0, t0 = node.cpu_s(), time.monotonic()
            got = run_feed(n, 15.0, args.window_s, True, tmp, synced)
            cpu = 100.0 * (node.cpu_s() - c0) / (time.monotonic() - t0)
            log = node.log.read_text()
        finally:
            node.stop()
        if batching and "batching off" in log:
            raise RuntimeError(f"the node did not batch:\n{log[-2000:]}")
        cams = got["cameras"]
        total = sum(c["answered_fps"] for c in cams)
        batched = sum(max(0, c["node_frames_batched"]) for c in cams)
        processed = sum(max(0, c["node_frames_processed"]) for c in cams)
        rows[key] = {"cameras": cams, "batching": batching, "synced": synced,
                     "answered_fps_total": round(total, 2),
                     "frames_batched_share": round(batched / processed, 3) if processed else None,
                     "answered_fps_per_camera": [c["answered_fps"] for c in cams],
                     "lost_total": sum(c["lost"] for c in cams),
                     "sent_total": sum(c["sent"] for c in cams),
                     "node_cpu_percent_of_one_core": round(cpu, 1),
                     "node_cpu_ms_per_answered_frame": round(10.0 * cpu / total, 2)
                     if total else None}
        p50 = [c["e2e_p50_ms"] for c in cams]
        print(f"{n} camera(s){' synced' if synced else ''}{' batched' if batching else ''}: "
              f"{total:.1f} answered/s in all, "
              f"lost {rows[key]['lost_total']} of {rows[key]['sent_total']}, end-to-end p50 "
              f"{min(p50):.1f}-{max(p50):.1f} ms, node {cpu:.0f} % of a core "
              f"({rows[key]['node_cpu_ms_per_answered_frame']} ms/frame), "
              f"{batched} of {processed} frames batched", flush=True)
    base = rows["1"]["answered_fps_total"] or float("nan")
    for row in rows.values():
        row["total_vs_1_camera"] = round(row["answered_fps_total"] / base, 2)
    return {"fps_per_camera": 15.0, "size": "640x480 bgr8", "seconds": args.window_s,
            "batching": "rows 'N': batching off, the cameras take turns (one frame per "
            "inference); rows 'N_batched': waiting frames of the cameras run as one inference "
            "on the variant's dynamic-batch copy; 'synced': all cameras publish at the same "
            "instant (a triggered rig), else spread over the period", "runs": rows}


def idle(args: argparse.Namespace, tmp: Path, params: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"fps_arriving": 30.0, "seconds": args.idle_s, "bar_cpu_percent": 2.0}
    cases: tuple[tuple[str, bool, dict[str, str]], ...] = (
        ("no_subscribers", False, {}), ("one_subscriber", True, {}),
        ("no_subscribers_lazy_filter_off", False, {"lazy_filter": "false"}),
        ("no_subscribers_lazy_unsubscribe", False, {"lazy_unsubscribe": "true"}))
    for label, subscribe, more in cases:
        node = NodeProcess(tmp, topics(1), params | more)
        try:
            proc = feeder(1, 30.0, args.idle_s + 4.0, subscribe, tmp / f"idle-{label}.json")
            time.sleep(4.0)  # discovery, the feeder's 1 s pause, the first frames
            c0, t0 = node.cpu_s(), time.monotonic()
            time.sleep(args.idle_s)
            c1, t1 = node.cpu_s(), time.monotonic()
            rss = node.rss_mb()
            proc.communicate(timeout=60)
            fed = json.loads((tmp / f"idle-{label}.json").read_text())["cameras"][0]
        finally:
            node.stop()
        cpu = 100.0 * (c1 - c0) / (t1 - t0)
        out[label] = {"cpu_percent_of_one_core": round(cpu, 2), "rss_mb": round(rss, 1),
                      "frames_sent": fed["sent"], "frames_answered": fed["answered"]}
        print(f"idle {label}: {cpu:.2f} % of one core, RSS {rss:.0f} MB", flush=True)
    out["meets_bar"] = out["no_subscribers"]["cpu_percent_of_one_core"] < out["bar_cpu_percent"]
    for other in ("lazy_filter_off", "lazy_unsubscribe"):
        out[f"meets_bar_{other}"] = out[f"no_subscribers_{other}"][
            "cpu_percent_of_one_core"] < out["bar_cpu_percent"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 s windows (idle stays 20 s)")
    p.add_argument("--window-s", type=float, default=None)
    p.add_argument("--idle-s", type=float, default=20.0)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--parts", default="aggregate,idle",
                   help="which measurements (comma-separated), for a partial re-run")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "cameras.json")
    p.add_argument("--feed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cameras", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--hz", type=float, default=15.0, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--subscribe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--synced", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.feed:
        return feed(args)
    if args.window_s is None:
        args.window_s = 10.0 if args.quick else 30.0
    # Its own DDS domain on loopback: another node on this machine cannot answer our topics.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    tmp = Path(tempfile.mkdtemp(prefix="bench_cameras."))
    params = {"engine_cache_dir": str(tmp / "cache"), "precision": args.precision}
    t0 = time.monotonic()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"environment": environment_record(), "precision": args.precision,
                              "parts": sorted(parts)}
    if "aggregate" in parts:
        result["aggregate"] = aggregate(args, tmp, params)
    if "idle" in parts:
        result["idle"] = idle(args, tmp, params)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} in {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
