"""Vectorised non-maximum suppression.

Greedy NMS is sequential by definition; this solves its recurrence ("keep i unless a kept,
higher-scoring box overlaps it") by fixed-point iteration over an IoU matrix, so each pass
is one numpy operation and the number of passes is the longest suppression chain (a few),
never the number of boxes. Same result as the classic loop, without a Python loop per box
and without a torchvision dependency.
"""

from __future__ import annotations

import numpy as np

# Cap on boxes entering NMS: bounds the IoU matrix (3000^2 float32 = 36 MB) on a
# low-threshold evaluation run. Live thresholds leave tens of candidates.
MAX_CANDIDATES = 3000


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` with every box in ``b`` ([len(a), len(b)])."""
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = iw.clip(0) * ih.clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_candidates: int = MAX_CANDIDATES,
) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, highest score first.

    With ``class_ids`` boxes only suppress boxes of their own class.
    """
    if len(scores) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    ordered = boxes[order].astype(np.float32, copy=False)
    overlaps = pairwise_iou(ordered, ordered) > iou_threshold
    if class_ids is not None:
        cls = class_ids[order]
        overlaps &= cls[:, None] == cls[None, :]
    suppresses = np.triu(overlaps, k=1)  # [j, i]: j scores higher than i and overlaps it
    keep = np.ones(len(order), dtype=bool)
    while True:
        updated = ~np.any(suppresses & keep[:, None], axis=0)
        if np.array_equal(updated, keep):
            return order[keep]
        keep = updated
