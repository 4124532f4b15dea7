"""Vectorised NMS and the YOLO decoders against brute-force references."""

import numpy as np
import pytest

from edge_trt_ros.vision.decode import (
    DecodeParams,
    decode_efficientnms,
    decode_end2end,
    decode_yolov5,
    decode_yolov8,
)
from edge_trt_ros.vision.nms import nms, pairwise_iou


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, thr, classes=None) -> list[int]:
    """Textbook greedy NMS, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(
            _iou(boxes[i], boxes[k]) <= thr or (classes is not None and classes[i] != classes[k])
            for k in kept
        ):
            kept.append(i)
    return kept


def _random_boxes(rng, n, clustered=True):
    centers = rng.uniform(0, 100, (n, 2))
    if clustered:  # many overlaps and long suppression chains
        centers = rng.uniform(40, 60, (n, 2))
    wh = rng.uniform(2, 30, (n, 2))
    return np.concatenate([centers - wh / 2, centers + wh / 2], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(30))
def test_nms_matches_greedy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = _random_boxes(rng, n, clustered=seed % 2 == 0)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n) if seed % 3 == 0 else None
    thr = float(rng.uniform(0.1, 0.8))
    assert nms(boxes, scores, thr, classes).tolist() == reference_nms(boxes, scores, thr, classes)


def test_nms_of_nothing_is_nothing() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_pairwise_iou_matches_scalar_iou() -> None:
    rng = np.random.default_rng(1)
    a, b = _random_boxes(rng, 7, False), _random_boxes(rng, 5, False)
    expected = np.array([[_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(pairwise_iou(a, b), expected, rtol=1e-5, atol=1e-6)


def reference_yolov8(pred, p: DecodeParams):
    """Per-candidate loop: best class, threshold, xyxy, then reference NMS."""
    boxes, scores, classes = [], [], []
    for i in range(pred.shape[1]):
        cls = int(np.argmax(pred[4:, i]))
        score = float(pred[4 + cls, i])
        if score > p.confidence_threshold:
            cx, cy, w, h = pred[:4, i]
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            scores.append(score)
            classes.append(cls)
    kept = reference_nms(boxes, scores, p.nms_iou_threshold, classes)[: p.max_detections]
    return [boxes[k] for k in kept], [scores[k] for k in kept], [classes[k] for k in kept]


@pytest.mark.parametrize("seed", range(10))
def test_yolov8_decode_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    nc, n = 4, 300
    pred = np.zeros((4 + nc, n), np.float32)
    pred[:2] = rng.uniform(100, 200, (2, n))
    pred[2:4] = rng.uniform(5, 60, (2, n))
    pred[4:] = rng.uniform(0, 1, (nc, n)) ** 4
    p = DecodeParams(confidence_threshold=0.3, nms_iou_threshold=0.5, max_detections=20)
    got = decode_yolov8([pred[None]], p)
    boxes, scores, classes = reference_yolov8(pred, p)
    np.testing.assert_allclose(got.boxes, np.array(boxes, np.float32).reshape(-1, 4), atol=1e-4)
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6)
    assert got.class_ids.tolist() == classes
    assert got.boxes.dtype == np.float32 and got.class_ids.dtype == np.int64


def test_yolov5_decode_multiplies_objectness() -> None:
    # two candidates: obj 0.9 x cls 0.8 = 0.72 passes 0.5, obj 0.6 x cls 0.7 = 0.42 does not
    pred = np.array([[[50, 50, 20, 10, 0.9, 0.1, 0.8], [20, 20, 4, 4, 0.6, 0.7, 0.1]]],
                    np.float32)
    got = decode_yolov5([pred], DecodeParams(0.5, 0.5, 10))
    np.testing.assert_allclose(got.boxes, [[40, 45, 60, 55]])
    np.testing.assert_allclose(got.scores, [0.72], rtol=1e-6)
    assert got.class_ids.tolist() == [1]


def test_end2end_and_efficientnms_take_boxes_as_given() -> None:
    dets = np.array([[[1, 2, 3, 4, 0.2, 0], [5, 6, 7, 8, 0.9, 2], [9, 9, 9, 9, 0.5, 1]]],
                    np.float32)
    got = decode_end2end([dets], DecodeParams(0.3, 0.5, 10))
    assert got.class_ids.tolist() == [2, 1]
    np.testing.assert_allclose(got.boxes, [[5, 6, 7, 8], [9, 9, 9, 9]])
    num = np.array([[2]], np.int32)
    boxes = np.array([[[1, 1, 5, 5], [2, 2, 6, 6], [0, 0, 0, 0]]], np.float32)
    scores = np.array([[0.4, 0.8, 0.99]], np.float32)  # third is beyond num_dets
    classes = np.array([[3, 1, 0]], np.int32)
    got = decode_efficientnms([num, boxes, scores, classes], DecodeParams(0.3, 0.5, 10))
    assert got.class_ids.tolist() == [1, 3]
    np.testing.assert_allclose(got.scores, [0.8, 0.4])
