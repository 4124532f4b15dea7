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

Non-finite outputs: an engine whose activations overflow (fp16 past 65,504, a broken plan)
returns NaN or inf. Every decoder drops each candidate row (anchor or detection) holding a
NaN/inf box coordinate or score before thresholding, so no NaN box is ever returned, and
says how many it dropped in :attr:`Detections.nonfinite`; the detector keeps the running
total for diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_trt_ros.vision.nms import nms

LAYOUTS = ("yolov8", "yolov5", "end2end", "efficientnms")


@dataclass(frozen=True)
class Detections:
    """Boxes as xyxy float32 [N,4], scores float32 [N], class ids int64 [N].

    ``nonfinite``: rows of the raw model output dropped because they held NaN or inf (not
    detections; a sign of overflowing numerics in the engine).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    nonfinite: int = 0

    @classmethod
    def empty(cls, nonfinite: int = 0) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
            nonfinite,
        )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class DecodeParams:
    confidence_threshold: float = 0.25
    nms_iou_threshold: float = 0.45
    max_detections: int = 100


def _finite_rows(values: np.ndarray, axis: int) -> tuple[np.ndarray | None, int]:
    """(mask of rows with only finite values or None when all are, number of bad rows);
    ``axis`` is the axis along which one row's values lie."""
    finite = np.isfinite(values).all(axis=axis)
    bad = int(finite.size - np.count_nonzero(finite))
    return (finite if bad else None), bad


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] * 0.5
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def _select(
    boxes_cxcywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, p: DecodeParams,
    nonfinite: int,
) -> Detections:
    boxes = _cxcywh_to_xyxy(boxes_cxcywh.astype(np.float32, copy=False))
    keep = nms(boxes, scores, p.nms_iou_threshold, class_ids)[: p.max_detections]
    return Detections(
        boxes[keep], scores[keep].astype(np.float32), class_ids[keep].astype(np.int64),
        nonfinite,
    )


def decode_yolov8(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    pred = outputs[0][0]  # [4+nc, N]
    finite, bad = _finite_rows(pred, axis=0)
    class_scores = pred[4:]
    best = class_scores.max(axis=0)
    above = best > p.confidence_threshold
    if finite is not None:
        above &= finite
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return Detections.empty(bad)
    class_ids = class_scores[:, idx].argmax(axis=0)
    return _select(pred[:4, idx].T, best[idx], class_ids, p, bad)


def decode_yolov5(outputs: Sequence[np.ndarray], p: DecodeParams) -> Detections:
    pred = outputs[0][0]  # [N, 5+nc]
    finite, bad = _finite_rows(pred, axis=1)
    above = pred[:, 4] > p.confidence_threshold
    if finite is not None:
        above &= finite
    pred = pred[np.flatnonzero(above)]
    scores_all = pred[:, 5:] * pred[:, 4:5]
    class_ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(pred)), class_ids]
    keep = scores > p.confidence_threshold
    if not keep.any():
        return Detections.empty(bad)
    return _select(pred[keep, :4], scores[keep], class_ids[keep], p, bad)


def _top(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, p: DecodeParams) -> Detections:
    finite, bad = _finite_rows(np.column_stack([boxes, scores, classes]), axis=1)
    above = scores > p.confidence_threshold
    if finite is not None:
        above &= finite
    keep = np.flatnonzero(above)
    keep = keep[np.argsort(-scores[keep], kind="stable")][: p.max_detections]
    return Detections(
        boxes[keep].astype(np.float32),
        scores[keep].astype(np.float32),
        classes[keep].astype(np.int64),
        bad,
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
