"""COCO-style detection accuracy, overall, per class and per lighting bin.

The numbers come from faster-coco-eval (a drop-in, C++-backed pycocotools), never from a
hand-written mAP, so they match what the rest of the field reports. Per-lux-bin figures
evaluate only the images of that bin, which is what the accuracy guard compares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from edge_trt_ros.dataset import LUX_BINS, Sample, lux_bin
from edge_trt_ros.vision.decode import DecodeParams

# COCO practice: score every box down to 0.001, keep up to 300 per image, so the precision-
# recall curve is complete (the node's live thresholds would truncate it).
EVAL_DECODE = DecodeParams(confidence_threshold=0.001, nms_iou_threshold=0.6,
                           max_detections=300)

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]
Predictor = Callable[[np.ndarray], Prediction]


def _coco_dicts(
    predict: Predictor, samples: Iterable[Sample], class_names: Sequence[str]
) -> tuple[dict, list[dict], dict[int, float], float]:
    """Run ``predict`` on every sample; return COCO GT dict, detections, lux per image."""
    images: list[dict] = []
    annotations: list[dict] = []
    detections: list[dict] = []
    lux: dict[int, float] = {}
    infer_s = 0.0
    for image_id, s in enumerate(samples, start=1):
        h, w = s.image.shape[:2]
        images.append({"id": image_id, "width": w, "height": h})
        lux[image_id] = float(s.lux)
        for box, cls in zip(s.boxes.tolist(), s.class_ids.tolist(), strict=True):
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            })
        t0 = time.perf_counter()
        boxes, scores, class_ids = predict(s.image)
        infer_s += time.perf_counter() - t0
        for box, score, cls in zip(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist(),
            np.asarray(scores, dtype=np.float64).reshape(-1).tolist(),
            np.asarray(class_ids).reshape(-1).tolist(),
            strict=True,
        ):
            x0, y0, x1, y1 = box
            detections.append({
                "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score,
            })
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, detections, lux, infer_s


def _ap(
    gt: Any, dt: Any, image_ids: list[int] | None = None, cat_ids: list[int] | None = None
) -> dict[str, float | None]:
    """mAP@0.5 and mAP@0.5:0.95 (COCO 101-point, maxDets 100); None when there is no GT."""
    from faster_coco_eval import COCOeval_faster

    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    if image_ids is not None:
        ev.params.imgIds = image_ids
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    m5095, m50 = float(ev.stats[0]), float(ev.stats[1])
    return {"map50": m50 if m50 >= 0 else None, "map50_95": m5095 if m5095 >= 0 else None}


def coco_metrics(
    gt_dict: dict, detections: list[dict], lux: dict[int, float], class_names: Sequence[str]
) -> dict[str, Any]:
    """Overall, per-class and per-lux-bin figures from COCO-format GT and detections."""
    from faster_coco_eval import COCO

    gt = COCO(gt_dict)
    dt = gt.loadRes(detections)
    counts = np.bincount(
        [a["category_id"] - 1 for a in gt_dict["annotations"]], minlength=len(class_names)
    )
    result: dict[str, Any] = {
        "images": len(gt_dict["images"]),
        "instances": int(counts.sum()),
        "overall": _ap(gt, dt),
        "per_class": {
            name: {**_ap(gt, dt, cat_ids=[i + 1]), "instances": int(counts[i])}
            for i, name in enumerate(class_names)
        },
        "per_lux_bin": {},
    }
    for lo, hi, name in LUX_BINS:
        ids = [i for i, v in lux.items() if lux_bin(v) == name]
        entry: dict[str, Any] = {"lux_range": [lo, hi], "images": len(ids)}
        entry.update(_ap(gt, dt, image_ids=ids) if ids else {"map50": None, "map50_95": None})
        result["per_lux_bin"][name] = entry
    return result


def evaluate(
    predict: Predictor, samples: Iterable[Sample], class_names: Sequence[str]
) -> dict[str, Any]:
    """Run ``predict`` (RGB image -> xyxy boxes, scores, class ids) on ``samples`` and score it.

    The result is JSON-serialisable: ``overall``, ``per_class`` and ``per_lux_bin`` each hold
    ``map50`` and ``map50_95`` (None where a subset has no ground truth).
    """
    gt, detections, lux, infer_s = _coco_dicts(predict, samples, class_names)
    result = coco_metrics(gt, detections, lux, class_names)
    result["detections"] = len(detections)
    result["predict_ms_mean"] = 1e3 * infer_s / max(len(gt["images"]), 1)
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of a result from :func:`evaluate`."""

    def cell(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    rows = ["| subset | images / instances | mAP@0.5 | mAP@0.5:0.95 |", "|---|---|---|---|"]
    o = result["overall"]
    rows.append(f"| overall | {result['images']} / {result['instances']} | "
                f"{cell(o['map50'])} | {cell(o['map50_95'])} |")
    for name, r in result["per_class"].items():
        rows.append(f"| class `{name}` | {r['instances']} inst. | "
                    f"{cell(r['map50'])} | {cell(r['map50_95'])} |")
    for name, r in result["per_lux_bin"].items():
        lo, hi = r["lux_range"]
        rows.append(f"| lux `{name}` ({lo:g}–{min(hi, 100_000):g}) | {r['images']} img. | "
                    f"{cell(r['map50'])} | {cell(r['map50_95'])} |")
    return "\n".join(rows)
