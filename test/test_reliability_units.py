"""The ROS-free halves of the reliability fixes (docs/reliability.md): start-up parameter
checks, log-safe strings, frames lost before the callback, clock skew, YOLOv5 refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_models import constant_output_model, names_metadata
from rclpy.parameter import Parameter

from edge_trt_ros.errors import ModelLayoutError
from edge_trt_ros.model_info import read_model_info
from edge_trt_ros.ros.conversion import printable, publication_sequence, publisher_key
from edge_trt_ros.ros.parameters import check_overrides, check_static
from edge_trt_ros.runtime.counters import LOST, FrameCounters, SequenceGaps
from edge_trt_ros.runtime.health import OK, WARN
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.stream_health import delivery_health


def test_start_up_values_are_coerced_checked_and_typos_named() -> None:
    fixed, problems, warnings = check_overrides({
        "confidence_threshold": 1, "max_detections": 50.0, "nms_iou_threshold": 1.5,
        "backend": "cuda", "autostart": 1, "workers": True, "confidense_threshold": 0.3,
        "use_sim_time": False, "qos_overrides./image.subscription.depth": 5})
    assert fixed == {"confidence_threshold": 1.0, "max_detections": 50}
    assert type(fixed["confidence_threshold"]) is float
    assert len(problems) == 4 and any("nms_iou_threshold=1.5 is outside 0..1" in p
                                      for p in problems)
    assert any("backend='cuda' is not one of" in p for p in problems)
    assert any("autostart: expected a boolean" in p for p in problems)
    assert any("workers: expected an integer" in p for p in problems)  # True is not 1
    assert warnings == ["unknown parameter 'confidense_threshold' is ignored (misspelt?): "
                        "did you mean 'confidence_threshold'?"]


def test_keep_ready_entries_are_checked_at_start_and_while_unconfigured() -> None:
    fixed, problems, _ = check_overrides({"keep_ready": ["int8/max", "fp16/none"]})
    assert fixed == {"keep_ready": ["int8/max", "fp16/none"]} and not problems
    _, problems, _ = check_overrides({"keep_ready": ["int8/max", "int8/fast"]})
    assert len(problems) == 1 and "'int8/fast' is not precision/fusion_profile" in problems[0]
    refused = check_static([Parameter("keep_ready", value=["all", "int8/max"])],
                           configured=False)
    assert not refused.successful and "give it alone" in refused.reason
    assert check_static([Parameter("keep_ready", value=["all"])], configured=False).successful


def test_printable_escapes_what_could_forge_a_log_line() -> None:
    assert printable("cam\n[FATAL] x\r\x1b[31m\u202e") == "cam\\x0a[FATAL] x\\x0d\\x1b[31m\\u202e"
    assert printable("front_camera_optical") == "front_camera_optical"
    assert printable("Kamera-Süd") == "Kamera-Süd"  # letters are not control characters
    long = printable("a" * 500)
    assert len(long) < 160 and long.endswith("...(+380 chars)")


def test_message_info_keys() -> None:
    gid = {"implementation_identifier": "rmw_fastrtps_cpp", "data": [1, 2, 3]}
    assert publisher_key({"publisher_gid": gid}) == bytes([1, 2, 3])
    assert publisher_key({"source_timestamp": 1}) is None
    assert publication_sequence({"publication_sequence_number": 7}) == 7
    assert publication_sequence({"publication_sequence_number": None}) is None
    assert publication_sequence({}) is None


def test_sequence_gaps_count_losses_per_publisher_and_survive_restarts() -> None:
    gaps = SequenceGaps()
    assert gaps.observe(b"a", 10) == 0  # first frame: only starts the count
    assert gaps.observe(b"a", 11) == 0
    assert gaps.observe(b"a", 15) == 3
    assert gaps.observe(b"b", 1) == 0  # another publisher has its own numbers
    assert gaps.observe(b"b", 3) == 1
    assert gaps.observe(b"a", 2) == 0  # restarted publisher: not a loss
    assert gaps.observe(b"a", 3) == 0
    assert gaps.observe(b"a", None) is None and gaps.observe(b"a", 0) is None  # unsupported
    assert gaps.observe(None, 5, single_publisher=False) is None  # anonymous among several
    assert gaps.observe(None, 5) == 0 and gaps.observe(None, 7) == 1
    # two cameras with anonymous publishers: their numbers never interleave into gaps
    assert gaps.observe(None, 100, stream="front") == 0
    assert gaps.observe(None, 5000, stream="rear") == 0
    assert gaps.observe(None, 101, stream="front") == 0
    assert gaps.observe(None, 5003, stream="rear") == 2
    gaps.forget()
    assert gaps.observe(b"a", 100) == 0


def test_lost_frames_are_dropped_frames_and_warn_while_recent() -> None:
    counters = FrameCounters(window_s=5.0)
    counters.lost_tracking = "publisher sequence numbers"
    window = FrameWindow(5.0)
    counters.received()
    counters.lost(40, "40 frames missing", now=100.0)
    snap = counters.snapshot(now=101.0)
    assert snap.dropped[LOST] == 40 and snap.dropped_total == 40 and snap.recent[LOST] == 40
    health = delivery_health("active", window.stats(101.0), snap)
    assert health.level == WARN and "40 frames published by the camera never reached" in \
        health.message and health.values["frames_lost"] == "40"
    later = counters.snapshot(now=110.0)
    assert later.recent[LOST] == 0 and later.dropped_total == 40
    assert delivery_health("active", window.stats(110.0), later).level == OK


def test_stamps_far_from_the_clock_are_clock_skew_not_latency() -> None:
    window = FrameWindow(5.0)
    window.add(4.0, 25.0, now=1.0)
    window.add(4.0, -3_599_964.0, now=1.1)  # an hour ahead
    window.add(4.0, 86_400_032.0, now=1.2)  # a day behind
    window.add(4.0, float("nan"), now=1.3)  # no stamp
    stats = window.stats(now=1.3)
    assert stats.end_to_end_p50_ms == stats.end_to_end_p95_ms == 25.0
    assert (stats.clock_skew_frames, stats.clock_skew_total, stats.frames) == (2, 2, 4)
    counters = FrameCounters()
    health = delivery_health("active", stats, counters.snapshot())
    assert health.level == WARN and "24.0 h behind the node's clock" in health.message
    assert window.stats(now=20.0).clock_skew_frames == 0  # out of the window again
    assert window.stats(now=20.0).clock_skew_total == 2
    assert math.isnan(window.stats(now=20.0).end_to_end_p50_ms)


def _batched(path: Path, batch: int, heads: bool = False) -> Path:
    """A YOLOv5-style export with a fixed batch (and its raw detection heads)."""
    out = {"output0": np.zeros((1, 64, 9), np.float32)}
    if heads:
        out |= {f"head{i}": np.zeros((1, 3, s, s, 9), np.float32)
                for i, s in enumerate((40, 20, 10))}
    model = onnx.load(str(constant_output_model(path, out, (320, 320))))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(path))
    return path


def test_yolov5_fixed_batch_raw_heads_and_blind_overrides_are_refused(tmp_path: Path) -> None:
    batched = _batched(tmp_path / "b10.onnx", 10, heads=True)
    with pytest.raises(ModelLayoutError, match="fixed batch of 10"):
        read_model_info(batched)
    with pytest.raises(ModelLayoutError, match="fixed batch of 10"):  # forcing does not help
        read_model_info(batched, output_layout="yolov5")
    heads = _batched(tmp_path / "heads.onnx", 1, heads=True)
    with pytest.raises(ModelLayoutError, match="raw detection heads"):
        read_model_info(heads)
    assert read_model_info(heads, output_layout="yolov5").num_classes == 4  # 9 - 5
    e2e = constant_output_model(tmp_path / "e2e.onnx",
                                {"output0": np.zeros((1, 100, 6), np.float32)}, (320, 320))
    with pytest.raises(ModelLayoutError, match="set class_names"):
        read_model_info(e2e, output_layout="end2end")
    named = read_model_info(e2e, class_names=["a", "b"], output_layout="end2end")
    assert named.class_names == ("a", "b")
    v8 = constant_output_model(tmp_path / "v8.onnx", {"output0": np.zeros((1, 4, 64),
                                                                          np.float32)},
                               (320, 320), names_metadata(["a"], (320, 320)))
    with pytest.raises(ModelLayoutError, match="no class scores"):
        read_model_info(v8, output_layout="yolov8")
