"""Accuracy of every variant on this machine, written back into the manifest.

Each variant runs through the same :class:`~edge_trt_ros.detector.Detector` the node uses
(letterbox -> ONNX Runtime engine -> decode) on the first ``count`` frames of the
lux-stratified test split, scored by :func:`edge_trt_ros.evaluation.evaluate`. The frames
are rendered once and shared by all variants, so the comparison is frame for frame.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from edge_trt_ros.dataset import Sample, iter_split
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.evaluation import EVAL_DECODE, Prediction, evaluate
from edge_trt_ros.variants.manifest import (
    MAX_MAP50_DROP,
    load_manifest,
    machine,
    now_iso,
    save,
    variant_path,
)
from edge_trt_ros.vision.decode import DecodeParams

log = logging.getLogger(__name__)


def variant_detector(
    path: str | os.PathLike[str], precision: str, *, fusion_profile: str = "max",
    threads: int = 2, params: DecodeParams = EVAL_DECODE, device: str = "cpu",
) -> Detector:
    """A detector on ONNX Runtime (``cpu`` or ``cuda:N``) for one variant file and profile."""
    spec = EngineSpec("onnxruntime", str(path), precision=precision,
                      fusion_profile=fusion_profile, device=device, intra_op_threads=threads)
    return Detector.from_spec(spec, params)


def score(det: Detector, samples: Sequence[Sample]) -> dict[str, Any]:
    """COCO figures of one detector on ``samples``."""

    def predict(image: np.ndarray) -> Prediction:
        d = det.detect(image)
        return d.boxes, d.scores, d.class_ids

    return evaluate(predict, samples, det.class_names)


def summarise(result: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """mAP@0.5 overall/per lux bin, and the drop against ``reference`` (fp32)."""
    bins = {k: v["map50"] for k, v in result["per_lux_bin"].items()}
    out: dict[str, Any] = {
        "map50": result["overall"]["map50"], "map50_95": result["overall"]["map50_95"],
        "per_lux_bin_map50": bins, "predict_ms_mean": round(result["predict_ms_mean"], 2),
    }
    if reference is not None:
        ref_bins = reference["per_lux_bin_map50"]
        drop = {"overall": reference["map50"] - out["map50"]}
        drop.update({k: ref_bins[k] - v for k, v in bins.items()
                     if v is not None and ref_bins.get(k) is not None})
        out["map50_drop_vs_fp32"] = {k: round(v, 4) for k, v in drop.items()}
        out["worst_drop"] = round(max(drop.values()), 4)
        out["within_guard"] = bool(max(drop.values()) <= MAX_MAP50_DROP)
    return out


def evaluate_variants(
    manifest_path: str | os.PathLike[str], *, count: int | None = None, threads: int = 2,
    fusion_profile: str = "max", names: Sequence[str] | None = None,
    samples: Sequence[Sample] | None = None, reference: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score every variant (fp32 first, as the reference) and save it into the manifest.

    ``samples`` (already rendered test frames) and ``reference`` (an fp32 summary on the
    same frames) let a caller evaluate several variant sets against one fp32 run.
    """
    manifest = load_manifest(manifest_path)
    wanted = list(names or manifest["variants"])
    if reference is None and "fp32" in manifest["variants"] and "fp32" not in wanted:
        wanted.insert(0, "fp32")
    wanted.sort(key=lambda n: n != "fp32")
    t0 = time.perf_counter()
    if samples is None:
        samples = list(iter_split("test", count))
    render_s = time.perf_counter() - t0
    for name in wanted:
        entry = manifest["variants"][name]
        det = variant_detector(variant_path(manifest, name), entry["precision"],
                               fusion_profile=fusion_profile, threads=threads, device=device)
        try:
            t = time.perf_counter()
            summary = summarise(score(det, samples), reference)
            summary["seconds"] = round(time.perf_counter() - t, 1)
        finally:
            det.release()
        if name == "fp32":
            reference = summary
        entry["evaluation"] = summary
        log.info("%s: mAP@0.5 %.4f %s", name, summary["map50"],
                 summary.get("map50_drop_vs_fp32", ""))
    manifest["evaluation"] = {
        "measured": now_iso(),
        "how": {"split": "test", "frames": len(samples), "backend": "onnxruntime",
                "device": device, "fusion_profile": fusion_profile,
                "intra_op_threads": threads, "decode": asdict(EVAL_DECODE),
                "metric": "COCO mAP@0.5 (faster-coco-eval), fp32 is the reference",
                "guard_max_map50_drop": MAX_MAP50_DROP},
        "machine": machine(),
        "render_seconds": round(render_s, 1),
    }
    save(manifest)
    return manifest
