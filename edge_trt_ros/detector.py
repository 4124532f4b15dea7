"""The detection pipeline without ROS: image view -> letterbox -> engine -> decode -> boxes.

The ROS node, the CLI, the evaluation and the benchmarks all run frames through this one
class, so a figure measured offline is the figure of the code the robot runs.

When the engine runs on a GPU and exposes its input binding (``input_device_ptr``,
``stream``, ``infer_device``: the ONNX Runtime engine on ``cuda:N`` and the TensorRT
engine), the letterbox runs there too: the uint8 frame is copied to the device and the CUDA
letterbox writes the network input straight into the engine's input buffer on the engine's
stream, so the float tensor never crosses the bus.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge_trt_ros.engines.base import Engine
from edge_trt_ros.engines.registry import open_engine
from edge_trt_ros.engines.spec import EngineSpec, parse_device
from edge_trt_ros.errors import CudaError, EngineError
from edge_trt_ros.model_info import ModelInfo, read_model_info
from edge_trt_ros.vision.decode import DECODERS, DecodeParams, Detections
from edge_trt_ros.vision.image import ImageView, rgb_view
from edge_trt_ros.vision.letterbox import Letterbox, LetterboxGeometry

log = logging.getLogger("edge_trt_ros.detector")


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds spent in each stage of the last frame.

    With GPU preprocessing ``preprocess_ms`` is the host's part (queueing the frame copy,
    which from pageable memory includes staging it) and the kernel's time lands in
    ``inference_ms``, which waits for the stream.
    """

    preprocess_ms: float
    inference_ms: float
    decode_ms: float


def _gpu_letterbox(engine: Engine, info: ModelInfo) -> Any:
    """A GpuLetterbox writing into ``engine``'s input binding, or None when the engine has
    none (CPU engines) or the kernel cannot run here (logged with the reason)."""
    ptr = getattr(engine, "input_device_ptr", None)
    if ptr is None or not hasattr(engine, "infer_device"):
        return None
    try:
        from edge_trt_ros.gpu.letterbox import GpuLetterbox

        _, index = parse_device(engine.info.device)
        stream = getattr(engine, "stream", None)
        return GpuLetterbox(info.input_hw, info.input_layout, stream=stream, device=index)
    except CudaError as exc:
        log.warning("GPU letterbox unavailable (%s): letterboxing on the CPU and copying the "
                    "tensor to the GPU instead, about 0.5 ms more per 1080p frame", exc)
        return None


class Detector:
    """Runs one engine on camera frames; thresholds can change between frames.

    ``gpu_preprocess`` False keeps the letterbox on the CPU for a GPU engine (for
    comparisons). ``nonfinite_dropped`` counts the output rows the decoder dropped for
    NaN/inf since the detector was made, ``nonfinite_frames`` the frames that had any: a
    sign of overflowing numerics (an fp16 variant past its range) to report, not to hide.
    """

    def __init__(self, engine: Engine, info: ModelInfo, params: DecodeParams, *,
                 gpu_preprocess: bool = True) -> None:
        self.engine = engine
        self.info = info
        self.params = params
        self._letterbox = Letterbox(info.input_hw, info.input_layout)
        self._batch_tensor = np.empty((0,), np.float32)  # detect_batch's input, on first use
        self._batch_letterboxes: list[Letterbox] = []
        self._gpu = _gpu_letterbox(engine, info) if gpu_preprocess else None
        self._decode = DECODERS[info.output_layout]
        self.last_timing = FrameTiming(0.0, 0.0, 0.0)
        self.nonfinite_dropped = 0
        self.nonfinite_frames = 0
        self._owns_engine = True

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

    def share(self) -> Detector:
        """Another detector on this one's engine (its own buffers and counters), for a
        second worker; only this detector's :meth:`release` frees the engine."""
        if not self.engine.concurrent:
            raise EngineError(f"the {self.engine.info.backend} engine on "
                              f"{self.engine.info.device} serves one frame at a time; "
                              "open one engine per worker instead")
        other = Detector(self.engine, self.info, self.params, gpu_preprocess=False)
        other._owns_engine = False
        return other

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def gpu_preprocess(self) -> bool:
        """True when frames are letterboxed on the GPU into the engine's input."""
        return self._gpu is not None

    def update(self, **changes: float | int) -> None:
        """Change decode parameters (thresholds, max detections) for the next frame."""
        self.params = replace(self.params, **changes)  # type: ignore[arg-type]

    def detect(self, image: ImageView | np.ndarray) -> Detections:
        """Detections in the image's own pixel coordinates (never a NaN/inf box)."""
        view = image if isinstance(image, ImageView) else rgb_view(image)
        t0 = time.perf_counter()
        if self._gpu is not None:
            engine: Any = self.engine
            ptr, geometry = self._gpu(view, engine.input_device_ptr)
            t1 = time.perf_counter()
            outputs = engine.infer_device(ptr)
        else:
            tensor, geometry = self._letterbox(view)
            t1 = time.perf_counter()
            outputs = self.engine.infer(tensor)
        t2 = time.perf_counter()
        result = self._decoded(outputs, geometry)
        t3 = time.perf_counter()
        self.last_timing = FrameTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return result

    def _decoded(self, outputs: Sequence[np.ndarray], geometry: LetterboxGeometry
                 ) -> Detections:
        """One frame's outputs (batch 1) decoded into its image's coordinates."""
        try:
            found = self._decode(outputs, self.params)
        except (IndexError, ValueError) as exc:  # outputs that contradict the declared shapes
            shapes = [tuple(np.shape(o)) for o in outputs]
            raise EngineError(
                f"the engine returned outputs of shape {shapes}, which the "
                f"{self.info.output_layout} decoder cannot read ({exc}); the model's declared "
                "output shapes are wrong: re-export it, or set output_layout") from exc
        if found.nonfinite:
            self.nonfinite_dropped += found.nonfinite
            self.nonfinite_frames += 1
        return Detections(geometry.to_image(found.boxes), found.scores, found.class_ids,
                          found.nonfinite)

    def detect_batch(self, images: Sequence[ImageView]) -> list[Detections]:
        """Detections of several frames (e.g. one per camera) from one inference, each in
        its own image's coordinates, as :meth:`detect` gives them one at a time. Up to
        ``engine.max_batch`` frames; one frame is :meth:`detect`."""
        n = len(images)
        if n == 1:
            return [self.detect(images[0])]
        if not 1 <= n <= self.engine.max_batch:
            raise EngineError(f"{n} frames in one inference: this engine takes 1.."
                              f"{self.engine.max_batch} (open it with max_batch)")
        t0 = time.perf_counter()
        if len(self._batch_letterboxes) < n:  # made again only for a larger batch
            self._grow_batch(n)
        geometries = [lb(view)[1] for lb, view in zip(self._batch_letterboxes, images,
                                                      strict=False)]
        t1 = time.perf_counter()
        outputs = self.engine.infer(self._batch_tensor[:n])
        t2 = time.perf_counter()
        results = [self._decoded([o[i : i + 1] for o in outputs], geometry)
                   for i, geometry in enumerate(geometries)]
        t3 = time.perf_counter()
        self.last_timing = FrameTiming((t1 - t0) * 1e3 / n, (t2 - t1) * 1e3 / n,
                                       (t3 - t2) * 1e3 / n)
        return results

    def _grow_batch(self, n: int) -> None:
        """A batch input for ``n`` frames and one letterbox per slot writing into it."""
        one = self._letterbox.tensor.shape[1:]
        self._batch_tensor = np.empty((n, *one), np.float32)
        self._batch_letterboxes = [Letterbox(self.info.input_hw, self.info.input_layout,
                                             out=self._batch_tensor[i : i + 1])
                                   for i in range(n)]

    def release(self) -> None:
        if self._gpu is not None:  # first: it queues work on the engine's stream
            self._gpu.close()
            self._gpu = None
        if self._owns_engine:
            self.engine.release()
