"""NaN/inf model outputs never become boxes: every decoder drops and counts them, and the
Detector keeps the running count. On arrays for each layout, and end to end on the CPU
through ONNX Runtime with crafted models whose outputs are NaN/inf (test/onnx_models.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_models import constant_output_model, names_metadata, yolov8_output

from edge_trt_ros.detector import Detector
from edge_trt_ros.vision.decode import (
    DecodeParams,
    decode_efficientnms,
    decode_end2end,
    decode_yolov5,
    decode_yolov8,
)

P = DecodeParams(confidence_threshold=0.25, nms_iou_threshold=0.45, max_detections=100)
NAN, INF = float("nan"), float("inf")
NAMES = ["scratch", "crack", "dent"]


def _all_finite(d: object) -> bool:
    return bool(np.isfinite(d.boxes).all() and np.isfinite(d.scores).all())  # type: ignore[attr-defined]


def test_yolov8_drops_and_counts_nonfinite_rows() -> None:
    out = yolov8_output(
        [(50, 50, 20, 20), (150, 50, 20, 20), (250, 50, 20, 20), (350, 50, 20, 20),
         (450, 50, 20, 20)],
        [[0.9, 0, 0], [NAN, 0.8, 0], [INF, 0, 0], [0.7, 0, 0], [0, 0, 0.6]])
    out[0, 0, 3] = NAN  # a NaN box coordinate with a good score: must not pass
    out[0, 2, 4] = -INF  # a good score, an infinite width
    d = decode_yolov8([out], P)
    assert d.nonfinite == 4
    assert len(d) == 1 and _all_finite(d)
    np.testing.assert_allclose(d.boxes[0], [40, 40, 60, 60])


def test_yolov8_all_finite_counts_nothing() -> None:
    out = yolov8_output([(50, 50, 20, 20)], [[0.9, 0, 0]])
    d = decode_yolov8([out], P)
    assert d.nonfinite == 0 and len(d) == 1


def test_yolov8_all_nan_is_empty_with_every_row_counted() -> None:
    out = np.full((1, 7, 64), NAN, np.float32)
    d = decode_yolov8([out], P)
    assert len(d) == 0 and d.nonfinite == 64


def test_yolov5_drops_nonfinite_rows() -> None:
    out = np.zeros((1, 16, 5 + 3), np.float32)
    out[0, 0] = [100, 100, 20, 20, 0.9, 0.9, 0, 0]
    out[0, 1] = [NAN, 100, 20, 20, 0.9, 0.9, 0, 0]  # box NaN
    out[0, 2] = [200, 200, 20, 20, INF, 0.9, 0, 0]  # objectness inf
    out[0, 3] = [300, 300, 20, 20, 0.9, NAN, 0.9, 0]  # one class score NaN
    d = decode_yolov5([out], P)
    assert d.nonfinite == 3 and len(d) == 1 and _all_finite(d)


def test_end2end_and_efficientnms_drop_nonfinite_rows() -> None:
    out = np.zeros((1, 8, 6), np.float32)
    out[0, 0] = [10, 10, 50, 50, 0.9, 1]
    out[0, 1] = [10, 10, INF, 50, 0.9, 1]
    out[0, 2] = [10, 10, 50, 50, NAN, 1]
    d = decode_end2end([out], P)
    assert d.nonfinite == 2 and len(d) == 1 and _all_finite(d)

    boxes = np.zeros((1, 4, 4), np.float32)
    scores = np.zeros((1, 4), np.float32)
    boxes[0, :3] = [[0, 0, 10, 10], [0, NAN, 10, 10], [0, 0, 10, 10]]
    scores[0, :3] = [0.9, 0.9, INF]
    d = decode_efficientnms([np.array([[3]]), boxes, scores, np.zeros((1, 4), np.int32)], P)
    assert d.nonfinite == 2 and len(d) == 1 and _all_finite(d)


def test_detector_on_a_model_that_outputs_nan_and_inf(tmp_path: Path) -> None:
    """Real ONNX Runtime (CPU) on a crafted model: NaN/inf rows dropped, counted per frame
    and in total, the finite detection kept and mapped to the camera frame."""
    out = yolov8_output([(110, 120, 100, 40), (50, 50, 10, 10), (200, 200, 10, 10)],
                        [[0.05, 0.1, 0.8], [0.9, NAN, 0.0], [INF, 0.0, 0.0]])
    out[0, 0, 5:9] = NAN  # filler rows with a NaN x
    model = constant_output_model(tmp_path / "nan.onnx", {"output0": out},
                                  metadata=names_metadata(NAMES, (320, 320)))
    det = Detector.from_model(model, intra_op_threads=1)
    camera = np.zeros((480, 640, 3), np.uint8)
    for frame in (1, 2):
        d = det.detect(camera)
        assert len(d) == 1 and _all_finite(d) and d.nonfinite == 6
        assert det.nonfinite_dropped == 6 * frame and det.nonfinite_frames == frame
    np.testing.assert_allclose(d.boxes[0], [120, 120, 320, 200], atol=1e-3)
    assert int(d.class_ids[0]) == 2
    det.release()


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_detector_on_a_model_that_outputs_only_nonfinite(tmp_path: Path, value: float) -> None:
    out = np.full((1, 4 + len(NAMES), 32), value, np.float32)
    model = constant_output_model(tmp_path / "bad.onnx", {"output0": out},
                                  metadata=names_metadata(NAMES, (320, 320)))
    det = Detector.from_model(model, intra_op_threads=1)
    d = det.detect(np.zeros((240, 320, 3), np.uint8))
    assert len(d) == 0 and d.nonfinite == 32 and det.nonfinite_dropped == 32
    det.release()
