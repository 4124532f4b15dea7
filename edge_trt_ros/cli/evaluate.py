"""``edge-trt evaluate MODEL``: COCO mAP of a model on a rendered split."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_trt_ros.dataset import SPLITS
from edge_trt_ros.evaluation import EVAL_DECODE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="COCO mAP of a model on a synthetic split (overall, per class, per lux bin)",
        description="Runs the fp32 ONNX Runtime detector on a rendered split and scores it "
        "with faster-coco-eval.",
    )
    p.add_argument("model", type=Path, help="ONNX model (YOLOv5/v8 layout)")
    p.add_argument("--split", default="test", choices=list(SPLITS))
    p.add_argument("--count", type=int, default=None, help="frames (default: split size)")
    p.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    p.add_argument("--confidence", type=float, default=EVAL_DECODE.confidence_threshold)
    p.add_argument("--nms-iou", type=float, default=EVAL_DECODE.nms_iou_threshold)
    p.add_argument("--max-detections", type=int, default=EVAL_DECODE.max_detections)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_trt_ros.dataset import iter_split
    from edge_trt_ros.detector import Detector
    from edge_trt_ros.evaluation import Prediction, evaluate, format_table

    det = Detector.from_model(
        args.model, confidence_threshold=args.confidence, nms_iou_threshold=args.nms_iou,
        max_detections=args.max_detections, intra_op_threads=args.threads,
    )

    def predict(image: np.ndarray) -> Prediction:
        d = det.detect(image)
        return d.boxes, d.scores, d.class_ids

    t0 = time.perf_counter()
    result = evaluate(predict, iter_split(args.split, args.count), det.class_names)
    result.update(model=str(args.model), split=args.split, confidence=args.confidence,
                  nms_iou=args.nms_iou, max_detections=args.max_detections,
                  wall_s=round(time.perf_counter() - t0, 1))
    print(format_table(result))
    print(f"{result['images']} images, {result['wall_s']} s "
          f"(predict {result['predict_ms_mean']:.1f} ms/frame)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0
