"""One way to open an engine (:func:`open_engine`) and what this machine can run.

Every caller (node, CLI, benchmarks, evaluation) turns an :class:`EngineSpec` into a running
engine here, so a refusal ("TensorRT is not installed", "no CUDA device 1") is worded once
and a figure measured offline comes from the code the robot runs. :func:`capabilities`
answers which backends import, their versions and devices; ``backend: auto`` is resolved
from it by :func:`resolve_backend`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from edge_trt_ros.choices import AUTO, BACKENDS
from edge_trt_ros.engines.base import Engine
from edge_trt_ros.engines.dynamic_batch import dynamic_batch_file
from edge_trt_ros.engines.spec import EngineSpec, parse_device
from edge_trt_ros.errors import EngineError, NotBatchable

log = logging.getLogger("edge_trt_ros.engines.registry")


@dataclass(frozen=True)
class BackendStatus:
    """One backend on this machine: can it run, which version, on which devices."""

    name: str
    available: bool
    version: str
    devices: tuple[str, ...]
    reason: str  # why it is unavailable, or what limits it (empty when nothing does)


@dataclass(frozen=True)
class Capabilities:
    backends: Mapping[str, BackendStatus]

    def refusal(self, backend: str, device: str) -> str | None:
        """Why ``backend`` cannot run on ``device`` here (a sentence), or None when it can."""
        status = self.backends.get(backend)
        if status is None:
            return f"unknown backend {backend!r} (one of: {', '.join(BACKENDS)})"
        if not status.available:
            return f"{backend} cannot run here: {status.reason}"
        if device not in status.devices:
            return (f"{backend} has no device {device} here (available: "
                    f"{', '.join(status.devices)}){'; ' + status.reason if status.reason else ''}")
        return None

    def summary(self) -> dict[str, dict[str, object]]:
        """For logs and ``~/get_engine_info``."""
        return {n: {"available": s.available, "version": s.version, "devices": list(s.devices),
                    "reason": s.reason} for n, s in self.backends.items()}


def _cuda_devices() -> tuple[tuple[str, ...], str]:
    """('cuda:0', ...) visible through cuda-python, and why none when empty."""
    from edge_trt_ros.gpu import runtime

    reason = runtime.cuda_unavailable_reason(0)
    if reason is not None:
        return (), reason
    count = int(runtime.check(runtime.runtime_api().cudaGetDeviceCount(), "cudaGetDeviceCount"))
    return tuple(f"cuda:{i}" for i in range(count)), ""


def _onnxruntime_status() -> BackendStatus:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return BackendStatus("onnxruntime", False, "", (), f"onnxruntime is not installed "
                             f"({exc}): pip install onnxruntime (or onnxruntime-gpu)")
    devices: tuple[str, ...] = ("cpu",)
    reason = ""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        gpus, why = _cuda_devices()
        devices += gpus
        if not gpus:
            reason = f"CUDA execution provider present but no GPU usable: {why}"
    else:
        reason = ("CPU only: for the GPU install onnxruntime-gpu built for this machine's CUDA "
                  "(pip install onnxruntime-gpu) instead of onnxruntime")
    return BackendStatus("onnxruntime", True, ort.__version__, devices, reason)


def _tensorrt_status() -> BackendStatus:
    if importlib.util.find_spec("tensorrt") is None:
        return BackendStatus("tensorrt", False, "", (), "TensorRT is not installed (JetPack's "
                             "python3-libnvinfer, or NVIDIA's tensorrt wheel on x86)")
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as exc:  # the wheel imports but libnvinfer is missing, etc.
        return BackendStatus("tensorrt", False, "", (), f"tensorrt does not import ({exc})")
    version = str(getattr(trt, "__version__", "unknown"))
    gpus, why = _cuda_devices()
    if not gpus:
        return BackendStatus("tensorrt", False, version, (), f"no CUDA device: {why}")
    return BackendStatus("tensorrt", True, version, gpus, "")


@functools.cache
def capabilities() -> Capabilities:
    """What this machine can run (probed once per process; imports nothing it need not)."""
    caps = Capabilities({"onnxruntime": _onnxruntime_status(), "tensorrt": _tensorrt_status()})
    for status in caps.backends.values():
        log.debug("backend %s: %s %s %s", status.name,
                  "available" if status.available else "unavailable",
                  ",".join(status.devices), status.reason)
    return caps


def resolve_backend(requested: str, device: str = AUTO,
                    caps: Capabilities | None = None) -> tuple[str, str, str]:
    """(backend, device, why) for the ``backend``/``device`` parameters.

    ``auto`` = TensorRT where it imports and a GPU exists, else ONNX Runtime (CUDA where its
    provider and a GPU exist, else CPU). A named backend or device that cannot run here
    raises :class:`EngineError` with the reason; nothing falls back silently.
    """
    caps = caps or capabilities()
    if requested not in (AUTO, *BACKENDS):
        raise EngineError(f"backend {requested!r} is not one of auto, {', '.join(BACKENDS)}")
    if requested == AUTO:
        trt = caps.backends["tensorrt"]
        if trt.available and (device == AUTO or device in trt.devices):
            return "tensorrt", trt.devices[0] if device == AUTO else device, "auto: TensorRT " \
                "imports and a GPU exists"
        ort = caps.backends["onnxruntime"]
        if not ort.available:
            raise EngineError(f"no backend can run here: tensorrt: {trt.reason}; "
                              f"onnxruntime: {ort.reason}")
        chosen = device if device != AUTO else next(
            (d for d in ort.devices if d.startswith("cuda")), "cpu")
        why = f"auto: ONNX Runtime on {chosen} (TensorRT: {trt.reason or 'not on ' + device})"
        requested, device = "onnxruntime", chosen
    else:
        status = caps.backends[requested]
        if device == AUTO:
            if not status.devices:
                raise EngineError(f"{requested} cannot run here: {status.reason}")
            device = next((d for d in status.devices if d.startswith("cuda")),
                          status.devices[0])
        why = "requested"
    refusal = caps.refusal(requested, device)
    if refusal is not None:
        raise EngineError(refusal)
    return requested, device, why


def open_engine(spec: EngineSpec, caps: Capabilities | None = None) -> Engine:
    """Load (TensorRT: from the engine cache, or build) the engine ``spec`` describes.

    Off the hot path only: a TensorRT cache miss builds, which takes minutes on a Jetson.
    Raises :class:`EngineError` with what to do when the machine cannot run it.
    """
    refusal = (caps or capabilities()).refusal(spec.backend, spec.device)
    if refusal is not None:
        raise EngineError(refusal)
    if not Path(spec.model_path).is_file():
        raise EngineError(f"variant file {spec.model_path} not found")
    model_path = spec.model_path
    if spec.max_batch > 1:
        if spec.backend == "onnxruntime" and spec.device_kind != "cpu":
            raise NotBatchable(f"max_batch {spec.max_batch}: ONNX Runtime on {spec.device} "
                              "binds buffers for one frame; batch on the CPU or with TensorRT")
        model_path = str(dynamic_batch_file(model_path, spec.cache_dir))
    if spec.backend == "onnxruntime":
        from edge_trt_ros.engines.onnxruntime_backend import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model_path, precision=spec.precision,
                                 fusion_profile=spec.fusion_profile,
                                 intra_op_threads=spec.intra_op_threads, device=spec.device,
                                 cache_dir=spec.cache_dir or None, max_batch=spec.max_batch)
    from edge_trt_ros.engines.tensorrt_backend import load_engine

    try:
        config = spec.trt_config()
        if spec.max_batch > 1:
            config = replace(config, max_batch=spec.max_batch)
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    if not spec.cache_dir:
        raise EngineError("a TensorRT engine needs an engine cache directory (engine_cache_dir)")
    return load_engine(model_path, config, spec.cache_dir,
                       device_index=parse_device(spec.device)[1])
