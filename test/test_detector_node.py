"""The detector node over real loopback DDS: headers, boxes, encodings, bad frames, params.

The node runs as its own process, started exactly as detector.launch.py starts it, on a
model whose output is known, so every published box can be checked to the pixel.
"""

from __future__ import annotations

import itertools
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from edge_trt_ros.msg import EfficiencyStatus
from onnx_models import constant_output_model, names_metadata, yolov8_output
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from ros_harness import image_msg, machine_power_sensor, set_parameters, spin_until, stop
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from edge_trt_ros.ros.processes import start_detector, start_detector_command

CAMERA = "/test_cam/image_raw"
NAMES = ["scratch", "crack", "dent", "stain"]
# Two boxes in 320x320 network-input pixels (cx, cy, w, h) with their class scores.
BOXES = [(160, 160, 100, 50), (80, 200, 40, 40)]
SCORES = [[0.9, 0.0, 0.05, 0.0], [0.0, 0.0, 0.6, 0.0]]
_stamps = itertools.count(1_700_000_000_000_000_000, 1_000_000)


class Probe:
    """The test's side of the wire: publishes frames, collects what the detector says."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.node = Node("probe")
        self.image_pub = self.node.create_publisher(Image, CAMERA, 10)
        self.detections: dict[int, Detection2DArray] = {}
        self.efficiency: list[EfficiencyStatus] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(Detection2DArray, "/detections", self._on_det, 50)
        self.node.create_subscription(EfficiencyStatus, "/detector/efficiency",
                                      self.efficiency.append, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      self.diagnostics.append, 10)

    def _on_det(self, msg: Detection2DArray) -> None:
        self.detections[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg

    def send(self, pixels: np.ndarray, encoding: str, frame_id: str = "cam",
             pad: int = 0) -> int:
        stamp = next(_stamps)
        self.image_pub.publish(image_msg(pixels, encoding, stamp, frame_id, pad))
        return stamp

    def detect(self, pixels: np.ndarray, encoding: str = "rgb8", frame_id: str = "cam",
               pad: int = 0) -> Detection2DArray:
        """Publish until the detector answers (best-effort input may drop a frame)."""
        for _ in range(5):
            stamp = self.send(pixels, encoding, frame_id, pad)
            found = spin_until(self.node, lambda s=stamp: self.detections.get(s), 3.0)
            if found is not None:
                return found
        raise AssertionError(f"no detections for a {encoding} frame after 5 tries")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    tmp = tmp_path_factory.mktemp("detector")
    model = constant_output_model(
        tmp / "known.onnx", {"output0": yolov8_output(BOXES, SCORES)}, (320, 320),
        names_metadata(NAMES, (320, 320)),
    )
    log = tmp / "detector.log"
    with log.open("wb") as out:
        process = start_detector(CAMERA, backend="onnxruntime",
                                 extra_params={"model_path": str(model),
                                               "engine_cache_dir": str(tmp / "cache")},
                                 stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    p = Probe(log)
    try:
        ready = spin_until(p.node, lambda: p.image_pub.get_subscription_count() > 0, 30.0)
        assert ready, f"detector never subscribed to {CAMERA}:\n{stop(process, log)}"
        yield p
    finally:
        p.node.destroy_node()
        rclpy.shutdown()
        text = stop(process, log)
        assert process.returncode == 0, f"detector exited with {process.returncode}:\n{text}"


def _boxes(msg: Detection2DArray) -> list[tuple[str, list[float]]]:
    """(class, [score, cx, cy, w, h]) per detection, numbers rounded for comparison."""
    return [
        (d.results[0].hypothesis.class_id,
         [round(v, 3) for v in (d.results[0].hypothesis.score, d.bbox.center.position.x,
                                d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y)])
        for d in msg.detections
    ]


def test_detections_carry_the_image_header_and_camera_pixel_boxes(probe: Probe) -> None:
    msg = probe.detect(np.zeros((480, 640, 3), np.uint8), frame_id="front_camera_optical")
    assert msg.header.frame_id == "front_camera_optical"
    assert all(d.header == msg.header for d in msg.detections)
    # 640x480 -> 320x320: scale 0.5, 40 px of padding top and bottom
    assert _boxes(msg) == [
        ("scratch", [0.9, 320.0, 240.0, 200.0, 100.0]),
        ("dent", [0.6, 160.0, 320.0, 80.0, 80.0]),
    ]


@pytest.mark.parametrize(("encoding", "channels", "pad"), [
    ("rgb8", 3, 0), ("rgb8", 3, 13), ("bgr8", 3, 0), ("rgba8", 4, 8), ("bgra8", 4, 0),
    ("mono8", 1, 3),
])
def test_every_supported_encoding_and_padded_rows(
    probe: Probe, encoding: str, channels: int, pad: int
) -> None:
    shape = (240, 320) if channels == 1 else (240, 320, channels)
    msg = probe.detect(np.full(shape, 90, np.uint8), encoding, pad=pad)
    # 320x240 fits 320x320 at scale 1 with 40 px of padding top and bottom
    assert _boxes(msg)[0] == ("scratch", [0.9, 160.0, 120.0, 100.0, 50.0])


def test_bad_frames_are_dropped_counted_and_not_fatal(probe: Probe) -> None:
    good = np.zeros((48, 64, 3), np.uint8)
    probe.detect(good)  # the link is up: every frame below reaches the node
    spin_until(probe.node, lambda: False, 1.5)  # a fresh ~/efficiency after that frame
    before = probe.efficiency[-1].frames_dropped if probe.efficiency else 0
    bad = [
        image_msg(good, "yuv422", 1, "cam"),  # unsupported encoding
        Image(encoding="rgb8", height=0, width=64, step=192),  # zero height, no data
    ]
    short = image_msg(good, "rgb8", 3, "cam")
    short.data = short.data[:100]  # claims 48x64 but carries 100 bytes
    bad.append(short)
    for msg in bad:  # one at a time: the node keeps only the newest frame
        probe.image_pub.publish(msg)
        spin_until(probe.node, lambda: False, 0.3)
    assert probe.detect(good), "the node stopped detecting after bad frames"
    status = spin_until(
        probe.node,
        lambda: probe.efficiency and probe.efficiency[-1].frames_dropped >= before + 3
        and probe.efficiency[-1],
        5.0,
    )
    last = probe.efficiency[-1] if probe.efficiency else None
    assert status, f"frames_dropped did not count the bad frames: {last}"
    assert status.frames_processed >= 1 and status.backend == "onnxruntime"
    stream = spin_until(probe.node, lambda: next(
        (s for a in probe.diagnostics[-3:] for s in a.status
         if s.name.endswith("input stream") and s.level == DiagnosticStatus.WARN), None), 5.0)
    assert stream is not None and "frames dropped" in stream.message


def test_thresholds_change_at_runtime_and_empty_frames_are_published(probe: Probe) -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    [ok] = set_parameters(probe.node, "/detector", confidence_threshold=0.7)
    assert ok.successful
    assert [b[0] for b in _boxes(probe.detect(frame))] == ["scratch"]
    [ok] = set_parameters(probe.node, "/detector", confidence_threshold=0.95)
    assert ok.successful
    assert probe.detect(frame).detections == []  # still published, just empty
    [ok] = set_parameters(probe.node, "/detector", confidence_threshold=0.25)
    assert ok.successful and len(probe.detect(frame).detections) == 2


def test_invalid_parameters_are_refused_with_a_reason(probe: Probe) -> None:
    out_of_range, bad_choice, no_int8, restart_only, read_only = set_parameters(
        probe.node, "/detector", nms_iou_threshold=1.5, fusion_profile="fastest",
        precision="int8", model_path="/elsewhere.onnx", autostart=False,
    )
    assert not out_of_range.successful
    assert not bad_choice.successful and "not one of" in bad_choice.reason
    # a user's model without calibrated variants: refused with the command that makes them
    assert not no_int8.successful and "int8 needs calibration images" in no_int8.reason
    assert "edge-trt variants" in no_int8.reason
    assert not restart_only.successful and "applies at configure" in restart_only.reason
    assert not read_only.successful
    msg = probe.detect(np.zeros((480, 640, 3), np.uint8))
    assert len(msg.detections) == 2  # nothing changed


def test_label_info_reaches_a_late_subscriber(probe: Probe) -> None:
    got: list[LabelInfo] = []
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = probe.node.create_subscription(LabelInfo, "/detector/label_info", got.append, qos)
    assert spin_until(probe.node, lambda: got, 10.0), "no ~/label_info for a late joiner"
    assert [(c.class_id, c.class_name) for c in got[0].class_map] == list(enumerate(NAMES))
    probe.node.destroy_subscription(sub)


def test_efficiency_carries_energy_figures_labelled_with_their_source(probe: Probe) -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(5):
        probe.detect(frame)
    status = spin_until(probe.node, lambda: next(
        (s for s in reversed(probe.efficiency) if s.energy_per_frame_mj > 0), None), 5.0)
    assert status is not None, f"no energy per frame: {probe.efficiency[-1:]}"
    expected = machine_power_sensor()  # what the node must find on this machine
    assert status.power_source == expected.name
    assert status.power_scope == expected.scope
    assert status.power_estimated == expected.estimated  # estimated exactly when no sensor
    assert status.power_w > 0 and status.fps_per_watt > 0
    # the constant-output model has no multiply-accumulates: TOPS/W is undefined, not 0
    assert math.isnan(status.effective_tops_per_watt)
    power = next(s for a in reversed(probe.diagnostics) for s in a.status
                 if s.name.endswith(": power"))
    if expected.estimated:
        assert power.level == DiagnosticStatus.WARN and power.message.startswith("ESTIMATED")
        assert "rapl" in power.message  # says why the more specific sensors were skipped
    else:
        assert power.level == DiagnosticStatus.OK and "ESTIMATED" not in power.message


def test_core_log_records_reach_the_node_log(probe: Probe) -> None:
    """Records of the ROS-free core (here: the power sensor choice) appear in the node's log
    with their severity, as `ros2 launch` and /rosout show them."""
    text = probe.log.read_text()
    assert "[INFO]" in text
    assert "[detector]: [edge_trt_ros.power.select] hardware profile" in text


def test_unknown_hardware_profile_stops_the_node_with_a_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = constant_output_model(
        tmp_path / "m.onnx", {"output0": yolov8_output(BOXES, SCORES)}, (320, 320),
        names_metadata(NAMES, (320, 320)),
    )
    out = subprocess.run(
        start_detector_command(CAMERA, {"model_path": str(model),
                                        "hardware_profile": "orin_tx99"}),
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "orin_tx99" in out.stderr + out.stdout
    assert "orin_nx_16gb" in out.stderr + out.stdout  # lists what exists
