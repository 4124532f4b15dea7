"""The whole pipeline on one machine: synthetic AGV camera -> detector -> live figures.

Starts the camera and the detector as processes, exactly as a robot would run them
(same executables, params file and remappings as detector.launch.py), watches their
topics like any other AGV node would, prints one line a second and a summary, then stops
both. ``scripts/demo.sh`` runs it after the bootstrap.
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
from rclpy.node import Node
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.ros.launch_args import NODE_NAME
from edge_trt_ros.ros.processes import start_camera, start_detector

CAMERA = "/agv/front_camera/image_raw"


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
    print(f"edge_trt_ros demo: synthetic AGV camera ({rate_hz:g} Hz, 640x480 rgb8, 10-100k lux) "
          f"-> detector (shipped defect model, ONNX Runtime fp32 on CPU) for {seconds:g} s")
    print(f"  camera topic {CAMERA}; logs in {log_dir}")
    t0 = time.monotonic()
    next_line = t0 + 1.0
    try:
        while time.monotonic() - t0 < seconds:
            rclpy.spin_once(monitor, timeout_sec=0.05)
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
    if s is not None:
        print(f"  engine: {s.backend} {s.precision} profile {s.fusion_profile} [{s.engine_id}]")
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
