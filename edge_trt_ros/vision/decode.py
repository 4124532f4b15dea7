"""Decode the output layouts of common YOLO exports into boxes in network-input pixels.

Layouts
- ``yolov8``: one output [1, 4+nc, N]; rows cx, cy, w, h, then per-class scores
  (YOLOv8/v9/v11 Ultralytics exports and this package's model).
- ``yolov5``: one output [1, N, 5+nc]; cx, cy, w, h, objectness, class probabilities
  (YOLOv5/YOLOv7 exports).
- ``end2end``: one output [1, K, 6]; x1, y1, x2, y2, score, class, NMS already applied
  (Ultralytics ``nms=True`` / YOLOv10 exports).
- ``efficientnms``: four outputs num_dets [1,1], boxes [1,K,4], scores [1,K], classes [1,K]
  (TensorRT EfficientNMS-style exports, e.g. YOLOv7 ``--end2end``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_trt_ros.vision.nms import nms

LAYOUTS = ("yolov8", "yolov5", "end2end", "efficientnms")


@dataclass(frozen=True)
class Detections:
    """Boxes as xyxy float32 [N,4], scores float32 [N], class ids int64 [N]."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class DecodeParams:
    confidence_threshold: float = 0.25
    nms_iou_threshold: float = 0.45
    max_detections: int = 100


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] * 0.5
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def _select(
    boxes_cxcywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, p: DecodeParams
) -> Detections:
    boxes = _cxcywh_to_xyxy(boxes_cxcywh.astype(np.float32, copy=False))
    keep = nms(boxes, scores, p.nms_iou_threshold, class_ids)[: p.max_detections]
    return Detections(
        boxes[keep], scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)
    )


def decode_yolov8(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    pred = outputs[0][0]  # [4+nc, N]
    class_scores = pred[4:]
    best = class_scores.max(axis=0)
    idx = np.flatnonzero(best > p.confidence_threshold)
    if idx.size == 0:
        return Detections.empty()
    class_ids = class_scores[:, idx].argmax(axis=0)
    return _select(pred[:4, idx].T, best[idx], class_ids, p)


def decode_yolov5(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    pred = outputs[0][0]  # [N, 5+nc]
    candidates = np.flatnonzero(pred[:, 4] > p.confidence_threshold)
    pred = pred[candidates]
    scores_all = pred[:, 5:] * pred[:, 4:5]
    class_ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(pred)), class_ids]
    keep = scores > p.confidence_threshold
    if not keep.any():
        return Detections.empty()
    return _select(pred[keep, :4], scores[keep], class_ids[keep], p)


def _top(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, p: DecodeParams) -> Detections:
    keep = np.flatnonzero(scores > p.confidence_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][: p.max_detections]
    return Detections(
        boxes[keep].astype(np.float32),
        scores[keep].astype(np.float32),
        classes[keep].astype(np.int64),
    )


def decode_end2end(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    pred = outputs[0][0]  # [K, 6]
    return _top(pred[:, :4], pred[:, 4], pred[:, 5], p)


def decode_efficientnms(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    num, boxes, scores, classes = (np.asarray(o) for o in outputs[:4])
    n = int(num.reshape(-1)[0])
    return _top(boxes[0, :n], scores[0, :n], classes[0, :n], p)


DECODERS: dict[str, Callable[[Sequence[np.ndarray], DecodeParams], Detections]] = {
    "yolov8": decode_yolov8,
    "yolov5": decode_yolov5,
    "end2end": decode_end2end,
    "efficientnms": decode_efficientnms,
}
