"""Two cameras on one worker with batching, over real loopback DDS and the shipped model: the
frames that waited together ran as one inference, and every camera's detections are those
its frame gets alone."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import image_msg, spin_until, stop
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.dataset.render import render_sample
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.resources import DEFAULT_MODEL, find_resource
from edge_trt_ros.ros.processes import start_detector
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import image_view

CAMS = ("/left/image_raw", "/right/image_raw")
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
_stamps = itertools.count(1_700_100_000_000_000_000, 1_000_000)


def _ns(stamp: object) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)  # type: ignore[attr-defined]


def _boxes(msg: Detection2DArray) -> list[tuple[str, float, float, float, float]]:
    return sorted((d.results[0].hypothesis.class_id, d.bbox.center.position.x,
                   d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y)
                  for d in msg.detections)


def test_waiting_frames_of_two_cameras_run_together_and_match_single_frames(
        tmp_path: Path) -> None:
    model = find_resource(DEFAULT_MODEL)
    frames = {cam: np.ascontiguousarray(render_sample(seed, lux=lux).image[:, :, ::-1])
              for cam, seed, lux in zip(CAMS, (11, 22), (40_000, 300), strict=True)}
    single = Detector.from_spec(EngineSpec("onnxruntime", str(model), intra_op_threads=1),
                                DecodeParams(0.25, 0.45, 100))
    expected = {}
    for cam, f in frames.items():
        found = single.detect(image_view(f.tobytes(), "bgr8", 480, 640, 1920))
        names = single.class_names
        expected[cam] = sorted((names[int(c)], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
                               for (x1, y1, x2, y2), c in zip(found.boxes.tolist(),
                                                              found.class_ids, strict=True))
    single.release()
    assert all(expected.values())  # both scenes have defects

    log = tmp_path / "detector.log"
    params = {"engine_cache_dir": str(tmp_path / "cache"), "image_topics": f"[{', '.join(CAMS)}]",
              "workers": "1", "intra_op_threads": "1", "lazy": "false", "batching": "true",
              "input_qos.reliability": "reliable", "input_qos.depth": "10",
              "diagnostics_period_s": "0.2"}
    with log.open("wb") as out:
        process = start_detector("/unused/image", backend="onnxruntime", extra_params=params,
                                 stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("batching_probe")
    try:
        got: dict[str, list[Detection2DArray]] = {cam: [] for cam in CAMS}
        for cam in CAMS:
            node.create_subscription(Detection2DArray, cam.replace("image_raw", "detections"),
                                     got[cam].append, RELIABLE)
        diags: list[DiagnosticArray] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        pubs = {cam: node.create_publisher(Image, cam, RELIABLE) for cam in CAMS}
        assert spin_until(node, lambda: all(p.get_subscription_count() for p in pubs.values()),
                          60.0), log.read_text()[-3000:]
        sent: dict[int, str] = {}
        for _ in range(6):  # bursts: while the worker runs one frame, the others wait
            for _ in range(3):
                for cam in CAMS:
                    stamp = next(_stamps)
                    sent[stamp] = cam
                    pubs[cam].publish(image_msg(frames[cam], "bgr8", stamp, cam))
            spin_until(node, lambda: False, 0.3)

        def batched() -> int:
            for arr in reversed(diags):
                values = [{kv.key: kv.value for kv in s.values} for s in arr.status
                          if s.name.endswith(f"camera {CAMS[0]}")]
                if values:
                    return int(values[0]["frames_batched"])
            return 0

        assert spin_until(node, lambda: batched() > 0 and sum(map(len, got.values())) >= 12,
                          20.0), (batched(), {c: len(m) for c, m in got.items()},
                                  log.read_text()[-3000:])
        for cam, msgs in got.items():
            for msg in msgs:
                assert sent[_ns(msg.header.stamp)] == cam  # its own frame, its own header
                assert msg.header.frame_id == cam
                boxes = _boxes(msg)
                assert [b[0] for b in boxes] == [e[0] for e in expected[cam]]
                np.testing.assert_allclose([b[1:] for b in boxes],
                                           [e[1:] for e in expected[cam]], atol=0.05)
        assert "batching off" not in log.read_text()
    finally:
        node.destroy_node()
        rclpy.shutdown()
        text = stop(process, log)
    assert process.returncode == 0, text
