"""The adaptive controller on simulated time: with ``use_sim_time`` and a ``/clock`` running
faster than real time, its dwell and the staleness of a reading follow the node's clock,
while frames are still inferred at a real rate (what bench/adaptive_shift.py relies on).

At 50x, the 120 s dwell passes in 2.4 s real and a reading goes stale (10 s) in 0.2 s real;
on the monotonic clock neither could happen within the test's timeouts.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from edge_trt_ros.msg import EfficiencyStatus
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ros_harness import image_msg, spin_until, stop
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Illuminance, Image, Temperature
from test_adaptive_node import dark_failing_variants
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.dataset import render_sample
from edge_trt_ros.ros.processes import start_detector

CAMERA = "/sim_time_cam/image_raw"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
RATE = 50.0  # simulated seconds per real second
SIM_T0 = 500_000_000.0  # far from any monotonic reading (15 years of uptime)
DWELL_S = 120.0


def test_dwell_and_staleness_follow_the_simulated_clock(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    log = tmp_path / "detector.log"
    with log.open("wb") as out:
        process = start_detector(CAMERA, backend="onnxruntime", extra_params={
            "use_sim_time": "true",
            # every frame must be answered: lazy mode would let the frames sent before the
            # node has matched this probe's detections subscription go (docs: Lazy mode)
            "lazy": "false",
            "variants_dir": str(dark_failing_variants(tmp_path)),
            "engine_cache_dir": str(tmp_path / "cache"),
            "input_qos.reliability": "reliable", "input_qos.depth": "10",
            "stats_window_s": "1.0", "diagnostics_period_s": "10.0",  # 0.2 s real at 50x
            "adaptive.enabled": "true", "adaptive.min_dwell_s": str(DWELL_S),
            "adaptive.audit_log_path": str(audit)}, stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("sim_time_probe")
    running = threading.Event()
    running.set()
    world = {"lux": 50_000.0, "light_on": True}
    mono0 = time.monotonic()

    def sim_now() -> float:
        return SIM_T0 + RATE * (time.monotonic() - mono0)

    try:
        status: list[EfficiencyStatus] = []
        answered: set[int] = set()
        node.create_subscription(EfficiencyStatus, "/detector/efficiency", status.append, 10)
        node.create_subscription(Detection2DArray, "/detections", lambda m: answered.add(
            m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec), RELIABLE)
        clock_pub = node.create_publisher(Clock, "/clock", 1)
        pub = node.create_publisher(Image, CAMERA, RELIABLE)
        lux_pub = node.create_publisher(Illuminance, "/illuminance", qos_profile_sensor_data)
        temp_pub = node.create_publisher(Temperature, "/temperature", qos_profile_sensor_data)
        pixels = np.ascontiguousarray(render_sample(30_000_011, 640, 480).image)
        sent: list[int] = []

        def world_loop() -> None:  # /clock at 100 Hz, sensors at 50 Hz, frames at 10 Hz
            k = 0
            while running.is_set():
                ns = int(sim_now() * 1e9)
                msg = Clock()
                msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
                clock_pub.publish(msg)
                if k % 2 == 0:
                    if world["light_on"]:
                        lux_pub.publish(Illuminance(illuminance=world["lux"]))
                    temp_pub.publish(Temperature(temperature=40.0))
                if k % 10 == 0 and pub.get_subscription_count() > 0:
                    pub.publish(image_msg(pixels, "rgb8", ns, "cam"))
                    sent.append(ns)
                k += 1
                time.sleep(0.01)

        thread = threading.Thread(target=world_loop, daemon=True)
        thread.start()
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 60.0), \
            stop(process, log)
        t_active = time.monotonic()
        on_int8 = spin_until(node, lambda: next(
            (s for s in status[-2:] if s.variant == "int8-ort"), None), 30.0)
        assert on_int8 is not None, [s.last_decision for s in status[-3:]]
        assert time.monotonic() - t_active < 30.0  # a 120 s dwell on the monotonic clock
        t_int8 = time.monotonic()
        spin_until(node, lambda: time.monotonic() - t_int8 > 2.0, 3.0)  # two windows on int8
        assert status[-1].variant == "int8-ort", status[-1].last_decision
        world["light_on"] = False  # the light meter goes silent while the clock runs on
        t_silent, seen = time.monotonic(), len(status)
        moved = spin_until(node, lambda: next(
            (s for s in status[seen:] if s.variant != "int8-ort"), None), 10.0)
        assert moved is not None, [s.last_decision for s in status[-3:]]
        # stale after 10 simulated seconds (0.2 s real) + one 1 s window: far below 10 s real
        assert time.monotonic() - t_silent < 5.0
        running.clear()
        thread.join()
        assert spin_until(node, lambda: set(sent[:-5]) <= answered, 10.0), \
            f"{len(set(sent) - answered)} of {len(sent)} frames unanswered"
    finally:
        running.clear()
        node.destroy_node()
        rclpy.shutdown()
        text = stop(process, log)
    assert process.returncode == 0, text
    records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    start = records[0]
    assert start["kind"] == "start" and start["clock"] == "ros (use_sim_time)"
    assert start["t_mono"] >= SIM_T0  # the controller began on /clock's time, not at 0
    decisions = [r for r in records if r["kind"] == "decision"]
    first = next(d for d in decisions if d["action"] == "switch")
    assert first["to"] == "int8-ort"
    assert first["t_mono"] - start["t_mono"] >= DWELL_S  # waited the dwell, in sim seconds
    assert any(d["trigger"] == "dwell" for d in decisions[:decisions.index(first)])
    # its follow-up used a window that began after the switch: mapped onto the sim clock
    follow = next(r for r in records
                  if r["kind"] == "followup" and r["ref"] == first["decision_id"])
    assert follow["realised"] is not None and follow["realised"]["frames"] > 0
    away = next(d for d in decisions if d["from"] == "int8-ort" and d["action"] == "switch")
    assert away["trigger"] == "guard"
    assert any("illuminance" in why for why in away["context"]["ignored"])
