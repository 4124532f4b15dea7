"""The whole pipeline on one machine: synthetic AGV camera -> detector -> live figures.

Starts the camera and the detector as processes, exactly as a robot would run them
(same executables, params file and remappings as detector.launch.py), watches their
topics like any other AGV node would, prints one line a second and a summary, then stops
both. On the way it switches the running engine fp32 -> int8 -> fp16 -> fp32 through
``~/switch_engine`` (as an operator would from rqt) and prints, per switch, the time it
took, the frames the node dropped meanwhile, and how fps, latency and energy per frame
changed. ``scripts/demo.sh`` runs it after the bootstrap.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from rclpy.client import Client
from rclpy.node import Node
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.ros.launch_args import NODE_NAME
from edge_trt_ros.ros.processes import start_camera, start_detector
from edge_trt_ros.srv import SwitchEngine

CAMERA = "/agv/front_camera/image_raw"
TOUR = ("int8", "fp16", "fp32")  # switched to at 1/4, 2/4 and 3/4 of the run, from fp32


class Monitor(Node):
    """What a downstream AGV node sees: detections and the detector's efficiency topic."""

    def __init__(self) -> None:
        super().__init__("demo_monitor")
        self.frames = 0
        self.objects = 0
        self.classes: collections.Counter[str] = collections.Counter()
        self.last: Detection2DArray | None = None
        self.status: EfficiencyStatus | None = None
        self.create_subscription(Detection2DArray, "/detections", self._on_det, 10)
        self.create_subscription(
            EfficiencyStatus, f"/{NODE_NAME}/efficiency", self._on_status, 10
        )
        self.switch: Client = self.create_client(SwitchEngine, f"/{NODE_NAME}/switch_engine")

    def _on_det(self, msg: Detection2DArray) -> None:
        self.frames += 1
        self.objects += len(msg.detections)
        self.classes.update(d.results[0].hypothesis.class_id for d in msg.detections)
        self.last = msg

    def _on_status(self, msg: EfficiencyStatus) -> None:
        self.status = msg


def _describe(msg: Detection2DArray | None) -> str:
    if msg is None or not msg.detections:
        return "none"
    parts = []
    for d in msg.detections[:4]:
        h = d.results[0].hypothesis
        parts.append(
            f"{h.class_id} {h.score:.2f} @({d.bbox.center.position.x:.0f},"
            f"{d.bbox.center.position.y:.0f}) {d.bbox.size_x:.0f}x{d.bbox.size_y:.0f}"
        )
    more = len(msg.detections) - 4
    return "; ".join(parts) + (f"; +{more} more" if more > 0 else "")


def _status_line(s: EfficiencyStatus | None) -> str:
    if s is None:
        return "no ~/efficiency yet"
    power = "power n/a"
    if s.power_w == s.power_w:  # not NaN
        power = (f"{s.power_w:5.1f} W{' (estimated)' if s.power_estimated else ''} "
                 f"{s.energy_per_frame_mj:6.0f} mJ/frame")
    return (
        f"{s.fps:5.1f} fps | inference p50 {s.inference_latency_p50_ms:5.1f} ms "
        f"p95 {s.inference_latency_p95_ms:5.1f} ms | end-to-end p50 "
        f"{s.end_to_end_latency_p50_ms:5.1f} ms | {power} | received {s.frames_received} "
        f"processed {s.frames_processed} dropped {s.frames_dropped}"
    )


def _figures(s: EfficiencyStatus | None) -> tuple[float, float, float, int]:
    nan = float("nan")
    if s is None:
        return nan, nan, nan, 0
    return s.fps, s.inference_latency_p50_ms, s.energy_per_frame_mj, s.frames_dropped


def _change(before: EfficiencyStatus | None, after: EfficiencyStatus | None) -> str:
    (f0, l0, e0, _), (f1, l1, e1, _) = _figures(before), _figures(after)
    estimated = " (estimated)" if after is not None and after.power_estimated else ""
    return (f"fps {f0:.1f} -> {f1:.1f}, inference p50 {l0:.1f} -> {l1:.1f} ms, "
            f"{e0:.0f} -> {e1:.0f} mJ/frame{estimated}")


class Tour:
    """fp32 -> int8 -> fp16 -> fp32 through ~/switch_engine, spread evenly over the time
    left once detections flow (a slow start on a busy machine shortens the steps)."""

    def __init__(self, monitor: Monitor, seconds: float) -> None:
        self.monitor = monitor
        self.seconds = seconds
        self.at: list[float] = []
        self.started = False
        self.current = "fp32"
        self.pending: tuple[str, object, EfficiencyStatus | None, float] | None = None
        self.reported: list[tuple[str, str, EfficiencyStatus | None, str]] = []

    def step(self, elapsed: float) -> None:
        if not self.started:
            if not self.monitor.frames:
                return
            self.started = True
            left = self.seconds - elapsed
            self.at = [elapsed + left * (i + 1) / (len(TOUR) + 1) for i in range(len(TOUR))]
        if self.pending is not None:
            target, future, before, t0 = self.pending
            if not future.done():  # type: ignore[attr-defined]
                return
            r = future.result()  # type: ignore[attr-defined]
            dropped = _figures(self.monitor.status)[3] - _figures(before)[3]
            line = (f"switch {self.current} -> {target}: "
                    + (f"done in {r.switch_time_ms:.0f} ms, {dropped} frames dropped by the "
                       f"node meanwhile" if r.success else f"REFUSED: {r.message}"))
            print(f"[{elapsed:5.1f} s] {line}", flush=True)
            self.reported.append((self.current, target, before, line))
            if r.success:
                self.current = target
            self.pending = None
        if self.at and elapsed >= self.at[0] and self.monitor.switch.service_is_ready():
            self.at.pop(0)
            target = TOUR[len(TOUR) - len(self.at) - 1]
            future = self.monitor.switch.call_async(SwitchEngine.Request(precision=target))
            self.pending = (target, future, self.monitor.status, time.monotonic())

    def summary(self, final: EfficiencyStatus | None) -> list[str]:
        """One line per switch: the figures before it against those before the next one."""
        befores = [b for _, _, b, _ in self.reported] + [final]
        return [f"  {a} -> {b}: {_change(befores[i], befores[i + 1])}"
                for i, (a, b, _, _) in enumerate(self.reported)]


def run(seconds: float, rate_hz: float, log_dir: Path) -> int:
    """Run the demo for ``seconds``; returns 0 when detections flowed, 1 otherwise."""
    det_log, cam_log = log_dir / "detector.log", log_dir / "camera.log"
    with det_log.open("wb") as d_out, cam_log.open("wb") as c_out:
        detector = start_detector(CAMERA, stdout=d_out, stderr=subprocess.STDOUT)
        camera = start_camera(
            CAMERA, {"rate_hz": str(rate_hz)}, stdout=c_out, stderr=subprocess.STDOUT
        )
    rclpy.init()
    monitor = Monitor()
    tour = Tour(monitor, seconds)
    print(f"edge_trt_ros demo: synthetic AGV camera ({rate_hz:g} Hz, 640x480 rgb8, 10-100k lux) "
          f"-> detector (shipped defect model, ONNX Runtime on the CPU) for {seconds:g} s, "
          "switching fp32 -> int8 -> fp16 -> fp32 on the way")
    print(f"  camera topic {CAMERA}; logs in {log_dir}")
    t0 = time.monotonic()
    next_line = t0 + 1.0
    try:
        while time.monotonic() - t0 < seconds:
            rclpy.spin_once(monitor, timeout_sec=0.05)
            tour.step(time.monotonic() - t0)
            for name, proc in (("detector", detector), ("camera", camera)):
                if proc.poll() is not None:
                    print(f"the {name} exited with code {proc.returncode}; its log:",
                          file=sys.stderr)
                    print((log_dir / f"{name}.log").read_text()[-3000:], file=sys.stderr)
                    return 1
            if time.monotonic() >= next_line:
                next_line += 1.0
                print(f"[{time.monotonic() - t0:5.1f} s] {_status_line(monitor.status)}")
                print(f"          last frame: {_describe(monitor.last)}")
    finally:
        for proc in (camera, detector):
            if proc.poll() is None:
                proc.send_signal(2)
        for proc in (camera, detector):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        monitor.destroy_node()
        rclpy.try_shutdown()
    print("summary:")
    print(f"  frames with detections published: {monitor.frames}, objects: {monitor.objects} "
          f"({monitor.objects / max(monitor.frames, 1):.2f} per frame)")
    print("  by class: " + (", ".join(f"{k} {v}" for k, v in monitor.classes.most_common())
                            or "none"))
    print(f"  detector: {_status_line(monitor.status)}")
    s = monitor.status
    if tour.reported:
        print("  per switch (figures over the stats window before it and before the next):")
        for line in tour.summary(s):
            print(line)
    if s is not None:
        print(f"  engine: {s.variant} ({s.backend} {s.precision}, profile {s.fusion_profile}) "
              f"[{s.engine_id}]")
        if s.power_w == s.power_w:  # not NaN
            print(f"  energy over the last {s.window_s:.0f} s: {s.power_w:.1f} W, "
                  f"{s.energy_per_frame_mj:.1f} mJ/frame, {s.fps_per_watt:.3f} FPS/W, "
                  f"{s.effective_tops_per_watt:.3g} effective TOPS/W "
                  f"(source {s.power_source}, scope {s.power_scope})")
            if s.power_estimated:
                print("  ESTIMATED: this machine has no power sensor; the watts come from the "
                      "hardware profile's idle/TDP and CPU utilisation (`edge-trt power` says "
                      "why each sensor was skipped)")
    if monitor.frames == 0:
        print("no detections arrived: see the logs above", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge_trt_ros demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frame rate (Hz)")
    parser.add_argument("--log-dir", type=Path, default=None, help="where node logs go")
    args = parser.parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="edge_trt_ros_demo_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return run(args.seconds, args.rate, log_dir)


if __name__ == "__main__":
    sys.exit(main())
