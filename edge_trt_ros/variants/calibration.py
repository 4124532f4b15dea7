"""INT8 calibration: lighting-stratified, augmented frames through the runtime letterbox.

The calibration set is frames of the ``calib`` split (stratified by illuminance: any prefix
of 4k frames has k frames per lux bin), augmented (see :mod:`.augment`) and letterboxed by
the same :class:`~edge_trt_ros.vision.letterbox.Letterbox` the detector runs, so the ranges
are measured on exactly the tensors the engine will see.

The result (per-tensor ranges, ONNX Runtime's ``TensorsData`` JSON) is cached under a key
that hashes the model file, every calibration-set parameter and the ONNX Runtime version
(which names the tensors of the pre-processed graph). A second run with the same key loads
the ranges instead of running the network over the frames again.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    TensorsData,
    create_calibrator,
    load_tensors_data,
    save_tensors_data,
)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

from edge_trt_ros.dataset import lux_bin, render_sample, split_lux, split_seeds
from edge_trt_ros.files import sha256_json, write_json_atomic
from edge_trt_ros.variants.augment import AugmentSpec, augment
from edge_trt_ros.vision.image import rgb_view
from edge_trt_ros.vision.letterbox import Letterbox

log = logging.getLogger(__name__)

# Bump when the frame pipeline (augmentation maths, letterbox use) changes meaning, so old
# caches stop matching.
PIPELINE_VERSION = 1

METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}

# Frames per collect_data() call: bounds the intermediate activations held in memory
# (the shipped model keeps ~60 MB of float activations per frame).
_CHUNK = 16

_runs = 0  # calibrations actually run in this process (cache hits do not count)


def calibration_runs() -> int:
    """How many calibrations ran (not loaded from cache) in this process."""
    return _runs


@dataclass(frozen=True)
class CalibrationSpec:
    """Everything that defines a calibration set and how ranges are computed from it."""

    count: int = 512
    # Measured on the shipped model (800 test frames): percentile 99.999 beat MinMax
    # (augmented frames add outliers that stretch min/max ranges) and Entropy, for both
    # recipes; 99.99 clips too much. See bench/README.md.
    method: str = "percentile"
    percentile: float = 99.999  # percentile method only
    augment: AugmentSpec | None = field(default_factory=AugmentSpec)
    split: str = "calib"
    frame_wh: tuple[int, int] = (640, 480)  # rendered camera frame size before letterbox

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"calibration count must be >= 1, got {self.count}")
        if self.method not in METHODS:
            raise ValueError(
                f"unknown calibration method {self.method!r}; use one of {', '.join(METHODS)}"
            )
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in (0, 100], got {self.percentile}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "method": self.method,
            "percentile": self.percentile if self.method == "percentile" else None,
            "augment": self.augment.to_dict() if self.augment else None,
            "split": self.split,
            "frame_wh": list(self.frame_wh),
            "pipeline_version": PIPELINE_VERSION,
        }


def calibration_key(
    model_sha256: str, spec: CalibrationSpec, input_hw: tuple[int, int], layout: str
) -> str:
    """Cache key: model content + calibration set + what turns frames into tensors."""
    return sha256_json({
        "model_sha256": model_sha256,
        "spec": spec.to_dict(),
        "input_hw": list(input_hw),
        "layout": layout,
        "onnxruntime": ort.__version__,
    })


class CalibrationFrames(CalibrationDataReader):
    """Feeds ``{input_name: tensor}`` for calibration frames ``start..stop`` (lazily)."""

    def __init__(
        self,
        spec: CalibrationSpec,
        input_name: str,
        input_hw: tuple[int, int],
        layout: str = "nchw",
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        self.spec = spec
        self.input_name = input_name
        self.start = start
        self.stop = spec.count if stop is None else min(stop, spec.count)
        self.served = 0
        self.lux_bins: dict[str, int] = {}
        self._letterbox = Letterbox(input_hw, layout)
        self._frames = self._iter()

    def _iter(self) -> Iterator[dict[str, np.ndarray]]:
        w, h = self.spec.frame_wh
        split = self.spec.split
        for seed in split_seeds(split, self.stop)[self.start:]:
            sample = render_sample(seed, w, h, lux=split_lux(split, seed))
            image = augment(sample.image, sample.seed, self.spec.augment) \
                if self.spec.augment else sample.image
            tensor, _ = self._letterbox(rgb_view(image))
            name = lux_bin(sample.lux)
            self.lux_bins[name] = self.lux_bins.get(name, 0) + 1
            self.served += 1
            yield {self.input_name: tensor.copy()}  # the letterbox reuses its buffer

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._frames, None)

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class CalibrationResult:
    """Where the ranges are and how they were obtained."""

    key: str
    ranges_path: Path
    method: str
    cached: bool
    frames: int
    seconds: float
    lux_bins: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "ranges_file": str(self.ranges_path), "method": self.method,
            "cached": self.cached, "frames": self.frames, "seconds": round(self.seconds, 2),
            "frames_per_lux_bin": self.lux_bins,
        }


def quantizable_op_types() -> list[str]:
    """The op types whose tensors ``quantize_static`` would quantize (its default list)."""
    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def calibrate(
    model_path: str | os.PathLike[str],
    model_sha256: str,
    spec: CalibrationSpec,
    cache_dir: str | os.PathLike[str],
    *,
    input_name: str,
    input_hw: tuple[int, int],
    layout: str = "nchw",
) -> CalibrationResult:
    """Tensor ranges of ``model_path`` over the calibration set, from cache when possible.

    ``model_path`` is the graph that will be quantized (after pre-processing), and
    ``model_sha256`` the hash of the file it was made from: the key names the source model,
    the graph's tensor names follow from it and the ONNX Runtime version in the key.
    """
    global _runs
    key = calibration_key(model_sha256, spec, input_hw, layout)
    cache = Path(cache_dir)
    ranges_path = cache / f"calib-{key[:24]}.json"
    meta_path = cache / f"calib-{key[:24]}.meta.json"
    if ranges_path.is_file():
        try:
            load_tensors_data(ranges_path)
            meta: dict[str, Any] = {}
            if meta_path.is_file():
                meta = json.loads(meta_path.read_text())
            log.info("calibration cache hit: %s", ranges_path)
            return CalibrationResult(key, ranges_path, spec.method, True,
                                     int(meta.get("frames", spec.count)),
                                     float(meta.get("seconds", 0.0)),
                                     dict(meta.get("frames_per_lux_bin", {})))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("calibration cache %s unreadable (%s): recalibrating", ranges_path, exc)

    log.info("calibrating %s on %d %s frames (%s)%s", model_path, spec.count, spec.split,
             spec.method, " with augmentation" if spec.augment else "")
    t0 = time.perf_counter()
    calib_options: dict[str, Any] = {"symmetric": False}
    if spec.method == "percentile":
        calib_options["percentile"] = spec.percentile
    lux_bins: dict[str, int] = {}
    served = 0
    # The histogram calibrators print progress to stdout per chunk; the log line is enough.
    with tempfile.TemporaryDirectory(prefix="edge_trt_calib.") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            Path(model_path), quantizable_op_types(),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=METHODS[spec.method], extra_options=calib_options,
        )
        for start in range(0, spec.count, _CHUNK):
            reader = CalibrationFrames(spec, input_name, input_hw, layout, start, start + _CHUNK)
            calibrator.collect_data(reader)
            served += reader.served
            for name, n in reader.lux_bins.items():
                lux_bins[name] = lux_bins.get(name, 0) + n
        ranges = calibrator.compute_data()
        if not isinstance(ranges, TensorsData):
            raise RuntimeError(f"calibrator returned {type(ranges).__name__}, not TensorsData")
        del calibrator
    seconds = time.perf_counter() - t0
    _runs += 1
    save_tensors_data(ranges, ranges_path)  # tmp file + os.replace inside
    write_json_atomic(meta_path, {"key": key, "spec": spec.to_dict(), "frames": served,
                                  "seconds": round(seconds, 2), "frames_per_lux_bin": lux_bins,
                                  "onnxruntime": ort.__version__})
    log.info("calibrated %d frames in %.1f s -> %s", served, seconds, ranges_path)
    return CalibrationResult(key, ranges_path, spec.method, False, served, seconds, lux_bins)
