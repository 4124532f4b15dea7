"""The detection pipeline without ROS: image view -> letterbox -> engine -> decode -> boxes.

The ROS node, the CLI, the evaluation and the benchmarks all run frames through this one
class, so a figure measured offline is the figure of the code the robot runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import numpy as np

from edge_trt_ros.engines.base import Engine
from edge_trt_ros.engines.registry import open_engine
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.model_info import ModelInfo, read_model_info
from edge_trt_ros.vision.decode import DECODERS, DecodeParams, Detections
from edge_trt_ros.vision.image import ImageView, rgb_view
from edge_trt_ros.vision.letterbox import Letterbox


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds spent in each stage of the last frame."""

    preprocess_ms: float
    inference_ms: float
    decode_ms: float


class Detector:
    """Runs one engine on camera frames; thresholds can change between frames."""

    def __init__(self, engine: Engine, info: ModelInfo, params: DecodeParams) -> None:
        self.engine = engine
        self.info = info
        self.params = params
        self._letterbox = Letterbox(info.input_hw, info.input_layout)
        self._decode = DECODERS[info.output_layout]
        self.last_timing = FrameTiming(0.0, 0.0, 0.0)

    @classmethod
    def from_spec(
        cls,
        spec: EngineSpec,
        decode: DecodeParams,
        *,
        class_names: list[str] | None = None,
        output_layout: str = "auto",
    ) -> Detector:
        """The detector of one engine spec (opened through the engine registry)."""
        info = read_model_info(spec.model_path, class_names, output_layout)
        return cls(open_engine(spec), info, decode)

    @classmethod
    def from_model(
        cls,
        model_path: str | os.PathLike[str],
        *,
        confidence_threshold: float = 0.25,
        nms_iou_threshold: float = 0.45,
        max_detections: int = 100,
        class_names: list[str] | None = None,
        output_layout: str = "auto",
        intra_op_threads: int = 0,
    ) -> Detector:
        """ONNX Runtime on the CPU for the file as it is (its precision from its metadata)."""
        info = read_model_info(model_path, class_names, output_layout)
        spec = EngineSpec("onnxruntime", str(model_path), precision=info.precision,
                          intra_op_threads=intra_op_threads)
        params = DecodeParams(confidence_threshold, nms_iou_threshold, max_detections)
        return cls(open_engine(spec), info, params)

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    def update(self, **changes: float | int) -> None:
        """Change decode parameters (thresholds, max detections) for the next frame."""
        self.params = replace(self.params, **changes)  # type: ignore[arg-type]

    def detect(self, image: ImageView | np.ndarray) -> Detections:
        """Detections in the image's own pixel coordinates."""
        view = image if isinstance(image, ImageView) else rgb_view(image)
        t0 = time.perf_counter()
        tensor, geometry = self._letterbox(view)
        t1 = time.perf_counter()
        outputs = self.engine.infer(tensor)
        t2 = time.perf_counter()
        found = self._decode(outputs, self.params)
        result = Detections(geometry.to_image(found.boxes), found.scores, found.class_ids)
        t3 = time.perf_counter()
        self.last_timing = FrameTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return result

    def release(self) -> None:
        self.engine.release()
