"""The node through its lifecycle over real DDS: status while inactive, restart-only
parameters accepted while unconfigured (and checked then), reconfigure, and a shutdown
transition that ends the process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from edge_trt_ros.msg import EfficiencyStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from onnx_models import constant_output_model, names_metadata, yolov8_output
from rclpy.node import Node
from ros_harness import image_msg, set_parameters, spin_until, stop
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.ros.processes import start_detector

CAMERA = "/lifecycle_cam/image_raw"
NAMES = ["scratch", "crack", "dent", "stain"]


def _model(path: Path, score: float) -> Path:
    return constant_output_model(path, {"output0": yolov8_output(
        [(160, 160, 100, 50)], [[score, 0.0, 0.0, 0.0]])}, (320, 320),
        names_metadata(NAMES, (320, 320)))


def test_lifecycle_round_trip_and_shutdown(tmp_path: Path) -> None:
    first, second = _model(tmp_path / "a.onnx", 0.9), _model(tmp_path / "b.onnx", 0.7)
    log = tmp_path / "detector.log"
    with log.open("wb") as out:
        process = start_detector(CAMERA, backend="onnxruntime",
                                 extra_params={"model_path": str(first),
                                               "engine_cache_dir": str(tmp_path / "cache")},
                                 stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("lifecycle_probe")
    try:
        status: list[EfficiencyStatus] = []
        diags: list[DiagnosticArray] = []
        got: list[Detection2DArray] = []
        node.create_subscription(EfficiencyStatus, "/detector/efficiency", status.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        node.create_subscription(Detection2DArray, "/detections", got.append, 10)
        pub = node.create_publisher(Image, CAMERA, 10)
        change = node.create_client(ChangeState, "/detector/change_state")
        state = node.create_client(GetState, "/detector/get_state")
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 30.0), stop(process, log)

        def transition(tid: int) -> bool:
            assert change.wait_for_service(timeout_sec=10.0)
            future = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
            assert spin_until(node, future.done, 30.0)
            return bool(future.result().success)

        def label() -> str:
            future = state.call_async(GetState.Request())
            assert spin_until(node, future.done, 10.0)
            return str(future.result().current_state.label)

        def score() -> float:
            got.clear()
            frame = np.zeros((320, 320, 3), np.uint8)
            for i in range(5):
                pub.publish(image_msg(frame, "rgb8", 1_000 + i, "cam"))
                if spin_until(node, lambda: got, 2.0):
                    return float(got[0].detections[0].results[0].hypothesis.score)
            raise AssertionError("no detections")

        assert abs(score() - 0.9) < 1e-6
        assert transition(Transition.TRANSITION_DEACTIVATE) and label() == "inactive"
        status.clear()
        inactive = spin_until(node, lambda: next(
            (s for s in status if s.state == "inactive"), None), 12.0)
        assert inactive is not None, "no ~/efficiency while inactive"
        assert spin_until(node, lambda: any(
            "inactive" in s.message for a in diags for s in a.status
            if s.name.endswith(": inference")), 12.0)
        [early] = set_parameters(node, "/detector", model_path=str(second))
        assert not early.successful and "applies at configure" in early.reason

        assert transition(Transition.TRANSITION_CLEANUP) and label() == "unconfigured"
        [no_int8] = set_parameters(node, "/detector", precision="int8")
        assert not no_int8.successful and "edge-trt variants" in no_int8.reason  # checked now
        [ok] = set_parameters(node, "/detector", model_path=str(second))
        assert ok.successful, ok.reason
        assert transition(Transition.TRANSITION_CONFIGURE)
        assert transition(Transition.TRANSITION_ACTIVATE) and label() == "active"
        assert abs(score() - 0.7) < 1e-6  # the new model runs

        assert transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        process.wait(timeout=15)  # finalized is the end: the process exits by itself
        assert process.returncode == 0, stop(process, log)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        stop(process, log)
