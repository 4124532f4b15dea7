"""TensorRT backend: cached plans, named I/O tensors, one non-default stream, no per-frame
allocation.

``load_engine`` turns a variant file and a :class:`TrtBuildConfig` into a running
:class:`TensorRTEngine`: the plan comes from the engine cache (keyed by the variant file's
hash, backend + version, device, every build setting and the calibration hash) or is built
by :mod:`edge_trt_ros.engines.tensorrt_build` and stored. A cached plan TensorRT refuses
(``deserialize_cuda_engine`` returns None after a TensorRT or driver upgrade) is a cache
miss: logged, moved aside, rebuilt.

At run time every I/O tensor has a device buffer bound once by name; the model's outputs
also have pinned host buffers. A frame is: copy into the pinned input, H2D, enqueue, D2H,
synchronize, all on the engine's own (non-blocking) stream; with a dynamic batch only the
batch's bytes are copied. Outputs are read-only views of the pinned
buffers, valid until the next call (copy them to keep them). Outputs marked by a
``conservative``/``none`` fusion profile stay on the device: they exist to force the
boundary into memory, not to be read.

The TensorRT module is injected or imported on first use, and the CUDA helpers
(:mod:`edge_trt_ros.gpu.runtime`) load cuda-python on first use, so this module imports on a
machine with neither; tests inject stand-ins for both.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from edge_trt_ros.engines.base import EngineInfo
from edge_trt_ros.engines.cache import CacheKey, EngineCache, EntryManifest
from edge_trt_ros.engines.tensorrt_build import (
    TensorRTModule,
    TrtBuildConfig,
    backend_name,
    build_serialized,
    dims_tuple,
    load_tensorrt,
    make_logger,
)
from edge_trt_ros.errors import EngineError
from edge_trt_ros.gpu import runtime as gpu_runtime

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger("edge_trt_ros.engines.tensorrt")

TIMING_CACHE_NAME = "tensorrt.timing.cache"
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]\x1e\x1f]+)\]")
_NAME_SEPARATORS = re.compile(r" \+ |PWN\(|\(|\)|, |\x1e|\x1f")


def cache_key(model_path: str | Path, config: TrtBuildConfig, trt_module: TensorRTModule,
              device: str) -> CacheKey:
    """The engine-cache key of a variant file built with ``config`` on ``device``."""
    return CacheKey.for_file(
        model_path, backend=backend_name(trt_module),
        backend_version=str(getattr(trt_module, "__version__", "unknown")), device=device,
        settings=config.cache_settings(), calibration_sha256=config.calibration_sha256)


@dataclass
class _Tensor:
    """One I/O tensor: its device buffer, and pinned host memory for inputs/model outputs."""

    name: str
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # at max batch
    dynamic_batch: bool
    device: Any
    host: Any = None  # PinnedBuffer for the input and the model's outputs


def _model_outputs(model_path: Path) -> list[str]:
    return [o.name for o in onnx.load(str(model_path), load_external_data=False).graph.output]


class TensorRTEngine:
    """A deserialized plan with its execution context, stream and buffers (Engine protocol)."""

    concurrent = False  # one execution context, one set of bound buffers

    def __init__(self, trt_module: TensorRTModule, engine: trt.ICudaEngine, *, cuda: ModuleType,
                 info: EngineInfo, model_outputs: Sequence[str], keep_alive: Sequence[Any] = (),
                 device_index: int = 0) -> None:
        self._trt = trt_module
        self._cuda = cuda
        self._keep_alive = tuple(keep_alive)  # runtime + logger must outlive the engine
        self._engine: trt.ICudaEngine | None = engine
        self._info = info
        self._device_index = device_index
        self._stream = cuda.Stream(device=device_index)
        self._tensors: dict[str, _Tensor] = {}
        if not int(self._stream.handle):  # enqueue on the legacy default stream syncs the GPU
            self.release()
            raise EngineError("the CUDA helpers returned the default stream; TensorRT needs "
                              "its own stream")
        context = engine.create_execution_context()
        if context is None:
            self.release()
            raise EngineError("TensorRT could not create an execution context (GPU memory "
                              "exhausted?); release other engines or use a smaller variant")
        self._context: trt.IExecutionContext | None = context
        try:
            self._allocate(engine, context, model_outputs)
        except Exception:
            self.release()
            raise

    def _allocate(self, engine: trt.ICudaEngine, context: trt.IExecutionContext,
                  model_outputs: Sequence[str]) -> None:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise EngineError(f"the engine has inputs {inputs}; a detector needs exactly one")
        missing = [n for n in model_outputs if n not in names]
        if missing:
            raise EngineError(f"engine outputs {names} lack the model outputs {missing}; "
                              "delete the engine cache and rebuild")
        batch_dynamic = int(engine.get_tensor_shape(inputs[0])[0]) < 0
        if batch_dynamic:  # size every buffer for the profile's largest batch
            max_shape = engine.get_tensor_profile_shape(inputs[0], 0)[2]
            if not context.set_input_shape(inputs[0], max_shape):
                raise EngineError(f"TensorRT refused the profile's own maximum input shape "
                                  f"{dims_tuple(max_shape)}; delete the engine cache entry")
        for name in names:
            is_input = name in inputs
            shape = dims_tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineError(f"tensor {name!r} has a data-dependent shape {shape}, "
                                  "which this backend does not support")
            dtype = np.dtype(self._trt.nptype(engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            tensor = _Tensor(name, is_input, dtype, shape, batch_dynamic and is_input,
                             self._cuda.DeviceBuffer(nbytes, device=self._device_index))
            self._tensors[name] = tensor
            if is_input or name in model_outputs:
                tensor.host = self._cuda.PinnedBuffer(shape, dtype)
            if not context.set_tensor_address(name, tensor.device.ptr):
                raise EngineError(f"TensorRT refused the device address of tensor {name!r}")
        self._input = self._tensors[inputs[0]]
        self._outputs = [self._tensors[n] for n in model_outputs]
        self._batch = self._input.shape[0]
        self._set_batch(1 if batch_dynamic else self._batch)

    def _set_batch(self, batch: int) -> None:
        """Input shape for ``batch`` frames and read-only output views of that size."""
        assert self._context is not None
        if self._input.dynamic_batch and batch != self._batch:
            shape = (batch, *self._input.shape[1:])
            if not self._context.set_input_shape(self._input.name, shape):
                raise EngineError(f"TensorRT refused input shape {shape}")
        self._batch = batch
        self._input_bytes = self._input.host.nbytes * batch // self._input.shape[0]
        views = []
        for out in self._outputs:
            shape = dims_tuple(self._context.get_tensor_shape(out.name))
            view = out.host.array.reshape(-1)[: int(np.prod(shape))].reshape(shape)
            view.flags.writeable = False
            views.append(view)
        self._views: tuple[np.ndarray, ...] = tuple(views)
        self._copies = [(out, view.nbytes) for out, view in zip(self._outputs, views,
                                                                 strict=True)]

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def stream(self) -> Any:
        """The engine's CUDA stream: enqueue GPU preprocessing here, before ``infer_device``."""
        try:
            return self._stream
        except AttributeError:
            raise EngineError("engine was released") from None

    @property
    def max_batch(self) -> int:
        """The optimisation profile's largest batch (1 for a fixed batch-1 engine)."""
        return self._input.shape[0] if self._input.dynamic_batch else 1

    @property
    def input_spec(self) -> tuple[str, tuple[int, ...], np.dtype[Any]]:
        """(name, shape at max batch, dtype) of the input tensor."""
        return self._input.name, self._input.shape, self._input.dtype

    def _check_batch(self, batch: int) -> None:
        if self._context is None:
            raise EngineError("engine was released")
        limit = self._input.shape[0]
        if not self._input.dynamic_batch and batch != limit:
            raise EngineError(f"this engine was built for batch {limit} (the model's fixed "
                              f"batch dimension), got {batch}")
        if not 1 <= batch <= limit:
            raise EngineError(f"batch {batch} outside 1..{limit} of this engine "
                              "(raise max_batch in the build config)")
        if batch != self._batch:
            self._set_batch(batch)

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        """Run one batch from host memory; outputs are views valid until the next call."""
        if tensor.ndim != len(self._input.shape) or tensor.shape[1:] != self._input.shape[1:]:
            raise EngineError(f"input {self._input.name!r} expects shape "
                              f"[N, {', '.join(map(str, self._input.shape[1:]))}], "
                              f"got {list(tensor.shape)}")
        self._check_batch(tensor.shape[0])
        try:
            np.copyto(self._input.host.array[: tensor.shape[0]], tensor, casting="same_kind")
        except TypeError as exc:
            raise EngineError(f"input dtype {tensor.dtype} cannot feed {self._input.dtype}: "
                              f"{exc}") from exc
        self._cuda.copy_htod_async(self._input.device, self._input.host, self._stream,
                                   self._input_bytes)
        return self._run()

    @property
    def input_device_ptr(self) -> int:
        """The input binding's device address: GPU preprocessing that writes here (on
        :attr:`stream`) runs with ``infer_device(engine.input_device_ptr)`` and no rebinding."""
        return int(self._input.device.ptr)

    def infer_device(self, input_ptr: int, batch: int = 1) -> Sequence[np.ndarray]:
        """Run on an input already in device memory (GPU preprocessing) written on
        :attr:`stream` or synchronized before the call."""
        self._check_batch(batch)
        assert self._context is not None
        if input_ptr == self._input.device.ptr:
            return self._run()
        if not self._context.set_tensor_address(self._input.name, input_ptr):
            raise EngineError(f"TensorRT refused device address {input_ptr:#x} for the input")
        try:
            return self._run()
        finally:
            self._context.set_tensor_address(self._input.name, self._input.device.ptr)

    def _run(self) -> Sequence[np.ndarray]:
        assert self._context is not None
        if not self._context.execute_async_v3(self._stream.handle):
            raise EngineError("TensorRT execution failed (see the TensorRT error logged above)")
        for out, nbytes in self._copies:  # only the rows of this batch
            self._cuda.copy_dtoh_async(out.host, out.device, self._stream, nbytes)
        self._stream.synchronize()
        return self._views

    def layer_times_ms(self, tensor: np.ndarray, runs: int = 20) -> dict[str, float]:
        """Mean milliseconds per engine layer over ``runs`` (an IProfiler on a second context,
        so the hot-path context never carries a profiler)."""
        self.infer(tensor)  # stages the input on the device
        assert self._engine is not None and self._context is not None
        profiler = make_layer_profiler(self._trt)
        context = self._engine.create_execution_context()
        context.profiler = profiler
        if self._input.dynamic_batch:
            context.set_input_shape(self._input.name, (tensor.shape[0], *self._input.shape[1:]))
        for t in self._tensors.values():
            context.set_tensor_address(t.name, t.device.ptr)
        for _ in range(runs):
            if not context.execute_async_v3(self._stream.handle):
                raise EngineError("TensorRT execution failed while profiling")
            self._stream.synchronize()
        del context
        return {name: total / max(1, profiler.counts[name])
                for name, total in profiler.totals_ms.items()}

    def layers(self) -> list[dict[str, Any]]:
        """The fusion report's view of this engine (:func:`engine_layers`)."""
        if self._engine is None:
            raise EngineError("engine was released")
        return engine_layers(self._engine, self._trt)

    def release(self) -> None:
        """Free the context, engine, buffers and stream; idempotent."""
        self._context = None
        self._engine = None
        for tensor in getattr(self, "_tensors", {}).values():
            if tensor.host is not None:
                tensor.host.close()
            tensor.device.close()
        self._tensors = {}
        stream = self.__dict__.pop("_stream", None)
        if stream is not None:
            stream.close()
        self._keep_alive = ()


def make_layer_profiler(trt_module: TensorRTModule) -> Any:
    """An IProfiler summing per-layer time; the class is made here from the injected module."""
    base: Any = getattr(trt_module, "IProfiler", None)
    if base is None:
        raise EngineError(f"{trt_module.__name__} has no IProfiler: per-layer timing is "
                          "unavailable with this TensorRT")

    class LayerTimes(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.totals_ms: dict[str, float] = {}
            self.counts: dict[str, int] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.totals_ms[layer_name] = self.totals_ms.get(layer_name, 0.0) + ms
            self.counts[layer_name] = self.counts.get(layer_name, 0) + 1

    return LayerTimes()


def engine_layers(engine: trt.ICudaEngine,
                  trt_module: TensorRTModule | None = None) -> list[dict[str, Any]]:
    """The engine's layers from the engine inspector: name, type and the ONNX nodes each
    layer computes (several = fused). Full detail needs ``detailed_profiling`` at build;
    without it only names are known and the nodes are read from the fused names.
    ``trt_module`` defaults to the module that defines the engine's class."""
    if trt_module is None:
        trt_module = sys.modules.get(type(engine).__module__)
    formats = getattr(trt_module, "LayerInformationFormat", None)
    if formats is None:
        raise EngineError("engine_layers: pass the TensorRT module that made this engine")
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(formats.JSON)
    layers = json.loads(text).get("Layers", []) if text else []
    result = []
    for raw in layers:
        entry: dict[str, Any] = raw if isinstance(raw, dict) else {"Name": str(raw)}
        name = str(entry.get("Name", ""))
        nodes = _ONNX_LAYER.findall(str(entry.get("Metadata", "")))
        if not nodes:
            nodes = [t.strip() for t in _NAME_SEPARATORS.split(name) if t.strip()]
        result.append({
            "name": name,
            "layer_type": entry.get("LayerType", ""),
            "onnx_nodes": nodes,
            "fused": len(nodes) > 1,
            "inputs": [i.get("Name", "") for i in entry.get("Inputs", []) if isinstance(i, dict)],
            "outputs": [o.get("Name", "") for o in entry.get("Outputs", [])
                        if isinstance(o, dict)],
            "details": entry,
        })
    return result


def load_engine(
    model_path: str | Path,
    config: TrtBuildConfig,
    cache_dir: str | Path,
    *,
    trt_module: TensorRTModule | None = None,
    cuda: ModuleType | None = None,
    device: str | None = None,
    device_index: int = 0,
    builder: Callable[[], bytes] | None = None,
) -> TensorRTEngine:
    """A running engine for the variant file: from the cache, or built (minutes) and cached.

    ``trt_module``/``cuda`` default to ``tensorrt`` and :mod:`edge_trt_ros.gpu.runtime`;
    ``device`` to the GPU's identity; ``builder`` replaces the build (tests, remote builds).
    Call it off the hot path: a cache miss builds.
    """
    path = Path(model_path)
    trt_module = trt_module or load_tensorrt()
    cuda = cuda or gpu_runtime
    if not cuda.cuda_available():
        raise EngineError("no CUDA device is visible: TensorRT needs an NVIDIA GPU (check the "
                          "driver and CUDA_VISIBLE_DEVICES), or use backend:=onnxruntime")
    if not path.is_file():
        raise EngineError(f"variant file {path} not found; run `edge-trt variants`")
    device = device or str(cuda.device_identity(device_index))
    cache = EngineCache(cache_dir)
    if config.timing_cache_path is None:
        config = dataclasses.replace(config, timing_cache_path=str(cache.root / TIMING_CACHE_NAME))
    key = cache_key(path, config, trt_module, device)
    cuda.use_device(device_index)  # the plan is deserialized onto the current device
    logger = make_logger(trt_module)
    runtime: trt.Runtime = trt_module.Runtime(logger)
    if config.dla_core >= 0:
        runtime.DLA_core = config.dla_core  # must precede deserialization of a DLA plan

    def build() -> bytes:
        return builder() if builder is not None else build_serialized(trt_module, path,
                                                                      config).plan

    def deserialize(blob: bytes) -> trt.ICudaEngine | None:
        return runtime.deserialize_cuda_engine(blob)

    def allow_host_code(manifest: EntryManifest) -> None:
        """Host code only for a plan whose build-time manifest (written by this package,
        checked against the key and the bytes) says it carries some; never otherwise."""
        if hasattr(runtime, "engine_host_code_allowed"):  # TensorRT 8.6+
            runtime.engine_host_code_allowed = manifest.host_code
        elif manifest.host_code:
            raise EngineError(f"{backend_name(trt_module)} cannot allow a plan's host code "
                              "(no engine_host_code_allowed); rebuild without "
                              "version_compatible")

    try:
        engine, built = cache.get_or_build(key, build, deserialize,
                                           host_code=config.host_code,
                                           prepare=allow_host_code)
    except ValueError as exc:  # a plan fresh from the builder that the runtime refuses
        raise EngineError(f"{exc}: the TensorRT runtime and builder disagree; check that one "
                          "TensorRT version is installed") from exc
    if engine is None:  # get_or_build never returns a refused plan; keeps the type honest
        raise EngineError(f"TensorRT could not load the engine for {path.name}")
    plan = cache.path(key)
    log.info("TensorRT engine for %s (%s, fusion %s) %s %s", path.name, config.precision,
             config.fusion_profile, "built and cached as" if built else "loaded from", plan)
    version = str(getattr(trt_module, "__version__", "unknown"))
    info = EngineInfo(
        backend=backend_name(trt_module), backend_version=version, precision=config.precision,
        fusion_profile=config.fusion_profile,
        device=device + (f" DLA{config.dla_core}" if config.dla_core >= 0 else ""),
        model_path=str(path), engine_id=f"trt-{key.digest[:16]}",
        settings={**config.cache_settings(), "plan": str(plan),
                  "cache": "built" if built else "hit"})
    return TensorRTEngine(trt_module, engine, cuda=cuda, info=info,
                          model_outputs=_model_outputs(path), keep_alive=(runtime, logger),
                          device_index=device_index)
