"""fp16 headroom: which ops must stay fp32 so the fp16 variant cannot overflow.

fp16 tops out at 65,504. A network trained and checked on clean frames can exceed that on
frames outside its training distribution: on a GPU, where fp16 kernels really compute in
fp16, the shipped model's class-logit convolutions reached ~77k on a uniform-noise frame
and its fp16 variant returned NaN. ONNX Runtime's CPU provider computes most fp16 ops in
fp32 and hides this, so accuracy on a CPU is no evidence: ranges are.

This module measures every float tensor's absolute maximum with ONNX Runtime on the CPU in
fp32 (graph optimisations off, so tensor names are the file's own) over calibration frames
plus stress frames a factory camera can produce (uniform noise, saturation/glare, all
white, all black, high-gain sensor noise, impulse noise from dead/hot pixels), and picks
the ops to keep in fp32: the producer and every consumer of a tensor whose range exceeds
``fp16 max / margin`` (a consumer of an fp16 tensor would read the overflowed cast). The
rest of the graph is converted.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edge_trt_ros.dataset import render_sample, split_lux, split_seeds
from edge_trt_ros.variants.calibration import CalibrationFrames, CalibrationSpec
from edge_trt_ros.vision.image import rgb_view
from edge_trt_ros.vision.letterbox import Letterbox

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
STRESS_KINDS = ("uniform_noise", "saturated", "white", "black", "high_gain_noise",
                "impulse_noise")
_FLOAT = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class HeadroomSpec:
    """Which frames the ranges are measured on and how much headroom fp16 must keep.

    ``margin`` 4 keeps an op in fp32 once any of its tensors reaches a quarter of fp16's
    maximum (16,376): the frames are a sample, a real camera can go beyond them, and a
    factor of 4 is two more stops of exposure than the worst frame seen.
    """

    calibration_frames: int = 64
    stress_per_kind: int = 3
    margin: float = 4.0
    frame_wh: tuple[int, int] = (640, 480)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration_frames < 0 or self.stress_per_kind < 0:
            raise ValueError("HeadroomSpec frame counts must be >= 0")
        if self.calibration_frames + self.stress_per_kind == 0:
            raise ValueError("HeadroomSpec needs at least one frame")
        if self.margin < 1.0:
            raise ValueError(f"margin {self.margin} must be >= 1 (1 = fp16's own maximum)")

    @property
    def limit(self) -> float:
        return FP16_MAX / self.margin

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frame_wh"] = list(self.frame_wh)
        d["limit"] = self.limit
        d["stress_kinds"] = list(STRESS_KINDS)
        return d


def stress_image(kind: str, index: int, wh: tuple[int, int], seed: int = 0) -> np.ndarray:
    """One HxWx3 uint8 RGB stress frame (deterministic in kind, index and seed)."""
    if kind not in STRESS_KINDS:
        raise ValueError(f"unknown stress kind {kind!r}; one of {', '.join(STRESS_KINDS)}")
    w, h = wh
    rng = np.random.default_rng([seed, STRESS_KINDS.index(kind), index])
    if kind == "uniform_noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "white":
        return np.full((h, w, 3), 255, np.uint8)
    if kind == "black":
        return np.zeros((h, w, 3), np.uint8)
    seeds = split_seeds("calib", index + 1)
    scene = render_sample(seeds[index], w, h, lux=split_lux("calib", seeds[index])).image
    if kind == "saturated":  # glare / auto-exposure overshoot: 3-6 stops too bright
        gain = 2.0 ** rng.uniform(3.0, 6.0)
        return np.clip(scene.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    if kind == "high_gain_noise":  # dark scene pushed by analogue gain: noise dominates
        gain = rng.uniform(8.0, 32.0)
        noisy = scene.astype(np.float32) / 8.0 * gain + rng.normal(0.0, 48.0, scene.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if kind == "impulse_noise":  # dead and hot pixels, a failing sensor or cable
        out = scene.copy()
        hit = rng.random((h, w)) < 0.1
        out[hit] = rng.choice(np.array([0, 255], np.uint8), size=(int(hit.sum()), 1))
        return out
    raise AssertionError(kind)  # pragma: no cover - every kind is handled above


def stress_tensors(input_hw: tuple[int, int], layout: str, spec: HeadroomSpec
                   ) -> Iterator[tuple[str, np.ndarray]]:
    """(kind, network input) for every stress frame, through the runtime letterbox."""
    letterbox = Letterbox(input_hw, layout)
    for kind in STRESS_KINDS:
        for i in range(spec.stress_per_kind):
            tensor, _ = letterbox(rgb_view(stress_image(kind, i, spec.frame_wh, spec.seed)))
            yield kind, tensor.copy()


def float_tensors(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Every float32 tensor a node computes (shape inference gives their types)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    out = []
    for node in model.graph.node:
        for name in node.output:
            info = typed.get(name)
            if info is not None and info.type.tensor_type.elem_type == _FLOAT:
                out.append(info)
    return out


class RangeMeter:
    """Running per-tensor absolute maxima of a model on fp32 ONNX Runtime (CPU)."""

    def __init__(self, model: onnx.ModelProto, threads: int = 0) -> None:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        existing = {o.name for o in probe.graph.output}
        tensors = float_tensors(model)
        probe.graph.output.extend(t for t in tensors if t.name not in existing)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(probe.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.names = [t.name for t in tensors]
        self.absmax = dict.fromkeys(self.names, 0.0)
        self.worst_kind: dict[str, str] = {}
        self.frames: dict[str, int] = defaultdict(int)

    def add(self, kind: str, tensor: np.ndarray) -> None:
        values = self._session.run(self.names, {self._input: tensor})
        for name, value in zip(self.names, values, strict=True):
            with np.errstate(invalid="ignore"):
                peak = float(np.max(np.abs(value))) if value.size else 0.0
            if not np.isfinite(peak):
                peak = float("inf")
            if peak > self.absmax[name]:
                self.absmax[name] = peak
                self.worst_kind[name] = kind
        self.frames[kind] += 1


def blocked_nodes(model: onnx.ModelProto, absmax: dict[str, float], limit: float
                  ) -> tuple[list[str], dict[str, float]]:
    """(names of nodes to keep fp32, the tensors over ``limit`` with their maxima)."""
    over = {name: peak for name, peak in absmax.items() if peak > limit}
    keep = [n.name for n in model.graph.node
            if any(t in over for t in (*n.input, *n.output))]
    return keep, over


@dataclass(frozen=True)
class HeadroomReport:
    """What was measured and what the fp16 build keeps in fp32 (for the manifest)."""

    spec: HeadroomSpec
    frames: dict[str, int]
    blocked: list[str]
    blocked_op_types: dict[str, int]
    over_limit: dict[str, dict[str, Any]]
    largest_kept_fp16: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "frames": self.frames, "blocked_nodes": self.blocked,
                "blocked_op_types": self.blocked_op_types, "tensors_over_limit": self.over_limit,
                "largest_tensor_kept_fp16": self.largest_kept_fp16,
                "measured_with": f"onnxruntime {ort.__version__} CPU, fp32, no graph "
                                 "optimisation", "seconds": round(self.seconds, 1)}


def measure_headroom(
    model_path: str | os.PathLike[str], *, input_name: str, input_hw: tuple[int, int],
    layout: str = "nchw", spec: HeadroomSpec | None = None,
    calibration: CalibrationSpec | None = None, threads: int = 0,
    extra: Iterable[tuple[str, np.ndarray]] = (),
) -> HeadroomReport:
    """Measure ``model_path``'s ranges and choose the ops the fp16 variant keeps in fp32.

    Calibration frames are the first ``spec.calibration_frames`` of ``calibration``'s set
    (the same augmented, letterboxed tensors int8 calibration sees, at most its ``count``);
    ``extra`` adds
    (kind, tensor) pairs (tests use it for crafted inputs).
    """
    spec = spec or HeadroomSpec()
    t0 = time.perf_counter()
    model = onnx.load(str(model_path))
    meter = RangeMeter(model, threads)
    calib = calibration or CalibrationSpec()
    if spec.calibration_frames:  # never more than the calibration set holds
        frames = CalibrationFrames(calib, input_name, input_hw, layout, 0,
                                   min(spec.calibration_frames, calib.count))
        while (feed := frames.get_next()) is not None:
            meter.add("calibration", feed[input_name])
    for kind, tensor in stress_tensors(input_hw, layout, spec):
        meter.add(kind, tensor)
    for kind, tensor in extra:
        meter.add(kind, tensor)
    blocked, over = blocked_nodes(model, meter.absmax, spec.limit)
    op_types: dict[str, int] = defaultdict(int)
    by_name = {n.name: n for n in model.graph.node}
    for name in blocked:
        op_types[by_name[name].op_type] += 1
    kept = {k: v for k, v in meter.absmax.items() if k not in over}
    top = max(kept, key=kept.__getitem__) if kept else ""
    report = HeadroomReport(
        spec=spec, frames=dict(meter.frames), blocked=blocked, blocked_op_types=dict(op_types),
        over_limit={k: {"absmax": round(v, 1), "worst_frame": meter.worst_kind.get(k, "")}
                    for k, v in sorted(over.items(), key=lambda kv: -kv[1])},
        largest_kept_fp16={"tensor": top, "absmax": round(kept.get(top, 0.0), 1),
                           "worst_frame": meter.worst_kind.get(top, "")},
        seconds=time.perf_counter() - t0)
    log.info("fp16 headroom of %s: %d tensors over %.0f (fp16 max / %g), %d ops kept fp32 "
             "(%s); largest tensor left fp16 %.0f", model_path, len(over), spec.limit,
             spec.margin, len(blocked), dict(op_types), report.largest_kept_fp16["absmax"])
    return report
