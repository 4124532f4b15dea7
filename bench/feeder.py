#!/usr/bin/env python3
"""The camera side of the node benchmark, as its own process (its own GIL and DDS stack).

    python bench/feeder.py --mode adaptive --seconds 10 --out r.json    # as fast as it takes
    python bench/feeder.py --mode rate --hz 30 --seconds 10 --out r.json
    python bench/feeder.py --mode rate --hz 30 --switch-cycle '[["int8","max"], ...]' ...
    python bench/feeder.py --mode sink --seconds 10                      # discard frames
    python bench/feeder.py --mode publish --hz 30 --topic /t_sink ...    # into a sink
    python bench/feeder.py --mode switch --switch-cycle '[["int8","max"]]'  # only switch

Publishes uniquely stamped 640x480 bgr8 frames (rendered defect scenes) on ``--topic``,
reliable QoS so the transport loses nothing, and collects ``/detections``: which stamps
were answered and each one's end-to-end latency (answer received - image stamp, one
clock). ``adaptive`` keeps ``--inflight`` frames unanswered at any time: the node is fed
exactly as fast as it takes frames. ``rate`` publishes at a fixed rate. ``sink`` only
subscribes to the frames and drops them: the DDS load of a node without its inference.
``publish`` sends at a fixed rate to such a sink and expects no answers (the camera's load
beside the bare pipeline); it reports the rate it kept. ``--ready-file`` is written when the
measured publishing begins, so a caller can start its own measurement then.
``--switch-cycle`` calls ``~/switch_engine`` for each (precision, profile) in turn,
``--switch-every-s`` after the previous switch was answered, while publishing; the stream
goes on past ``--seconds`` until the last pair has run ``--switch-every-s`` too. Before
measuring, frames go out until the node answers one (a lazy node ignores frames until it
has matched this process's subscription); those are not counted. ``node_counters`` is what
the node's own ``~/efficiency`` counted over the run (received, replaced, ...), so a lost
frame can be placed: never delivered, replaced in the mailbox, rejected or failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.srv import SwitchEngine
from rclpy.client import Client
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.dataset import render_sample

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
COUNTERS = ("frames_received", "frames_processed", "frames_replaced", "frames_rejected",
            "frames_failed", "frames_dropped", "frames_idle_skipped")


def header_stamp_ns(cdr: bytes) -> int:
    """``header.stamp`` of a serialized message that starts with a std_msgs/Header: after
    the 4-byte CDR encapsulation (its second byte odd = little-endian), int32 sec and uint32
    nanosec."""
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] & 1 else ">iI", cdr, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


def frames(count: int = 8) -> list[Image]:
    out = []
    for i in range(count):
        rgb = render_sample(30_000_000 + i, width=640, height=480).image
        msg = Image(height=480, width=640, encoding="bgr8", is_bigendian=0, step=640 * 3)
        msg.data = np.ascontiguousarray(rgb[:, :, ::-1]).tobytes()
        msg.header.frame_id = "bench_camera"
        out.append(msg)
    return out


class Feeder(Node):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("bench_feeder")
        self.args = args
        self.frames = frames()
        self.pub = self.create_publisher(Image, args.topic, RELIABLE)
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}  # stamp -> monotonic send time
        self.latency_ms: dict[int, float] = {}
        self.received_at: dict[int, float] = {}  # stamp -> monotonic receive time
        self.answered = threading.Condition(self.lock)
        if args.mode == "sink":
            self.create_subscription(Image, args.topic, lambda m: None, RELIABLE)
        else:
            # Serialized: only the stamp is read, so the harness costs the machine little
            # more than the bare run's publisher does (a full message per answer did).
            self.create_subscription(Detection2DArray, args.detections, self._on_det,
                                     QoSProfile(depth=100,
                                                reliability=ReliabilityPolicy.RELIABLE),
                                     raw=True)
        self.switch: Client = self.create_client(SwitchEngine, args.switch_service)
        self.switches: list[dict[str, Any]] = []
        self.status: EfficiencyStatus | None = None  # the node's latest ~/efficiency
        self.create_subscription(EfficiencyStatus, args.efficiency, self._on_status, 10)

    def _on_status(self, msg: EfficiencyStatus) -> None:
        self.status = msg

    def counters(self) -> dict[str, int]:
        """The node's own frame counters from its latest ~/efficiency (empty before one)."""
        s = self.status
        return {} if s is None else {k: int(getattr(s, k)) for k in COUNTERS}

    def warm_up(self, timeout: float = 15.0) -> bool:
        """Frames until the node answers one, then forget them: a lazy node lets frames go
        until it has matched this process's detections subscription."""
        deadline, i = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            self.publish_one(i)
            i += 1
            with self.answered:
                if self.answered.wait_for(lambda: bool(self.latency_ms), timeout=0.1):
                    break
        time.sleep(0.3)  # the answers to the other warm-up frames
        with self.lock:
            answered = bool(self.latency_ms)
            self.sent.clear()
            self.latency_ms.clear()
            self.received_at.clear()
        return answered

    def _on_det(self, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = header_stamp_ns(data)
        with self.answered:
            if stamp in self.sent and stamp not in self.latency_ms:
                self.latency_ms[stamp] = (now - stamp) / 1e6
                self.received_at[stamp] = time.monotonic()
            self.answered.notify_all()

    def publish_one(self, i: int) -> None:
        msg = self.frames[i % len(self.frames)]
        now = self.get_clock().now()
        msg.header.stamp = now.to_msg()
        with self.lock:
            self.sent[now.nanoseconds] = time.monotonic()
        self.pub.publish(msg)

    def wait_for_subscriber(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pub.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False


def run_adaptive(node: Feeder, seconds: float, inflight: int) -> None:
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        with node.answered:  # an answer that never comes (a lost frame) costs 1 s, then on
            node.answered.wait_for(
                lambda: len(node.sent) - len(node.latency_ms) < inflight, timeout=1.0)
        node.publish_one(i)
        i += 1


def run_rate(node: Feeder, seconds: float, hz: float,
             longer: Callable[[], bool] = lambda: False) -> None:
    """``hz`` for ``seconds``, and on while ``longer()`` (a switch cycle not done yet; at
    most LONGER_MAX_S more)."""
    period = 1.0 / hz
    start = time.monotonic()
    i = 0
    while (t := start + i * period) < start + seconds or (
            t < start + seconds + LONGER_MAX_S and longer()):
        time.sleep(max(0.0, t - time.monotonic()))
        node.publish_one(i)
        i += 1


RESEND_AFTER_S = 15.0  # a response DDS dropped (its reader not matched yet) never comes
LONGER_MAX_S = 120.0  # how long a stream may outlast --seconds for its switch cycle


def run_switches(node: Feeder, cycle: list[list[str]], every_s: float, stop: threading.Event
                 ) -> None:
    """Each request ``every_s`` after the previous one was answered, and the last pair
    served ``every_s`` too. Each request is sent again every RESEND_AFTER_S while unanswered:
    the node applies them in order, so a resend of a switch already made answers "already
    running"."""
    if not cycle:
        return
    if not node.switch.wait_for_service(timeout_sec=10.0):
        node.switches.append({"error": "no switch_engine service"})
        return
    for precision, profile in cycle:
        if stop.wait(every_s):
            return  # the stream ended: no new request (one already sent is awaited)
        t0 = time.monotonic()
        node.switches.append({"to": [precision, profile], "sent_at": t0})
        request = SwitchEngine.Request(precision=precision, fusion_profile=profile)
        futures = [node.switch.call_async(request)]
        deadline = t0 + 120.0
        while not any(f.done() for f in futures) and time.monotonic() < deadline:
            time.sleep(0.005)
            if time.monotonic() > t0 + RESEND_AFTER_S * len(futures):
                futures.append(node.switch.call_async(request))
        first = futures[0].result() if futures[0].done() else None
        answer = first or next((f.result() for f in futures[1:] if f.done()), None)
        node.switches[-1] |= {
            "success": bool(answer and answer.success),
            "message": answer.message if answer else "no answer",
            "switch_ms": first.switch_time_ms if first else None,  # unknown from a resend
            "resent": len(futures) - 1, "answer_lost": first is None and answer is not None,
            "call_ms": round((time.monotonic() - t0) * 1e3, 1)}
    stop.wait(every_s)


def stream(node: Feeder, args: argparse.Namespace) -> dict[str, object]:
    """Publish for ``args.seconds`` (switching meanwhile if asked), then wait for answers."""
    if args.mode not in ("switch", "publish") and not node.warm_up():
        raise SystemExit("the node answered no frame within 15 s")
    before = node.counters()
    stop = threading.Event()
    switcher = threading.Thread(target=run_switches, args=(
        node, json.loads(args.switch_cycle), args.switch_every_s, stop), daemon=True)
    switcher.start()
    t0 = time.monotonic()
    if args.ready_file is not None:
        args.ready_file.write_text(f"{t0:.6f}\n")
    if args.mode == "adaptive":
        run_adaptive(node, args.seconds, args.inflight)
    else:  # a switch cycle runs to its end, however long its switches take
        run_rate(node, args.seconds, args.hz, longer=switcher.is_alive)
    t1 = time.monotonic()
    elapsed = t1 - t0
    stop.set()
    switcher.join(timeout=120)
    if args.mode == "publish":  # nothing answers: what was sent is the result
        return {"seconds": round(elapsed, 3), "frames_sent": len(node.sent),
                "sent_fps": len(node.sent) / elapsed if elapsed else 0.0,
                "publish_window_monotonic": [round(t0, 4), round(t1, 4)]}
    deadline = time.monotonic() + args.drain_s
    with node.answered:
        node.answered.wait_for(lambda: len(node.latency_ms) >= len(node.sent),
                               timeout=max(0.0, deadline - time.monotonic()))
        sent, lat = dict(node.sent), dict(node.latency_ms)
        received = sorted(node.received_at.values())
    lost = [s for s in sent if s not in lat]
    # ros2_benchmark's jitter: how much consecutive inter-arrival times differ
    jitter = np.abs(np.diff(np.diff(received))) * 1e3 if len(received) > 2 else np.array([])
    t0_sent = min(sent.values()) if sent else 0.0
    values = np.array(list(lat.values())) if lat else np.array([np.nan])
    return {
        "seconds": round(elapsed, 3), "frames_sent": len(sent),
        "frames_answered": len(lat), "frames_lost": len(lost),
        "answered_fps": len(lat) / elapsed if elapsed else 0.0,
        "sent_fps": len(sent) / elapsed if elapsed else 0.0,
        "latency_ms": {q: float(np.percentile(values, float(q[1:])))
                       for q in ("p50", "p90", "p95", "p99")}
        | {"min": float(np.min(values)), "max": float(np.max(values)),
           "mean": float(np.mean(values))},
        "jitter_ms": None if not jitter.size else {
            "min": float(jitter.min()), "max": float(jitter.max()),
            "mean": float(jitter.mean()), "std": float(jitter.std())},
        "publish_window_monotonic": [round(t0, 4), round(t1, 4)],
        "switches": [dict(s, sent_at=round(s["sent_at"] - t0_sent, 3)) for s in node.switches],
        "lost_sent_at": sorted(round(sent[s] - t0_sent, 3) for s in lost),
        "node_counters": {k: v - before.get(k, 0) for k, v in node.counters().items()},
    }


def spin(executor: SingleThreadedExecutor) -> None:
    """The executor until shutdown; a signal's shutdown (the way a sink is stopped) is no
    error."""
    with contextlib.suppress(ExternalShutdownException):
        executor.spin()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("adaptive", "rate", "publish", "sink", "switch"),
                   required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--hz", type=float, default=30.0)
    p.add_argument("--inflight", type=int, default=2)
    p.add_argument("--topic", default="/bench_camera/image_raw")
    p.add_argument("--detections", default="/detections")
    p.add_argument("--switch-service", default="/detector/switch_engine")
    p.add_argument("--efficiency", default="/detector/efficiency")
    p.add_argument("--switch-cycle", default="[]", help="JSON list of [precision, profile]")
    p.add_argument("--switch-every-s", type=float, default=1.5)
    p.add_argument("--drain-s", type=float, default=3.0, help="wait for late answers")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--ready-file", type=Path, default=None,
                   help="written (the monotonic start time) when measured publishing begins")
    args = p.parse_args(argv)
    rclpy.init()
    node = Feeder(args)
    # Single-threaded: rclpy's multi-threaded executor keeps a core busy re-queueing pending
    # callbacks, which starves this loop's timing and the node under test alike.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=spin, args=(executor,), daemon=True)
    spinner.start()
    result: dict[str, object] = {"mode": args.mode}
    try:
        if args.mode == "sink":  # until --seconds pass or a signal shuts rclpy down
            end = time.monotonic() + args.seconds
            while rclpy.ok() and time.monotonic() < end:
                time.sleep(0.1)
            return 0
        if args.mode == "switch":
            run_switches(node, json.loads(args.switch_cycle), 0.0, threading.Event())
            result["switches"] = node.switches
        elif not node.wait_for_subscriber():
            print("feeder: nobody subscribed to", args.topic, file=sys.stderr)
            return 2
        else:
            result |= stream(node, args)
    finally:
        executor.shutdown()
        spinner.join(timeout=10)  # spin() must have returned before the node goes away
        node.destroy_node()
        rclpy.try_shutdown()
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
