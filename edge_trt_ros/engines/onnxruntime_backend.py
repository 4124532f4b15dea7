"""ONNX Runtime backend: the CPU provider, or the CUDA provider on ``cuda:N``.

On the CPU a frame is ``session.run`` on a host tensor. On ``cuda:N`` the session runs on
the CUDA execution provider through an I/O binding fixed at load time: the input is a
device buffer (:attr:`OnnxRuntimeEngine.input_device_ptr`) that the CUDA letterbox writes
into on the engine's one stream (:attr:`OnnxRuntimeEngine.stream`, handed to ONNX Runtime
as its compute stream), outputs go to device buffers and are copied into pinned host
memory on the same stream. Nothing is allocated per frame, and because every address is
fixed ONNX Runtime can capture the run in a CUDA graph (``cuda_graph``): it does when every
node of the optimised graph runs on the CUDA provider, and says why not otherwise.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_trt_ros.engines.base import EngineInfo
from edge_trt_ros.engines.cache import CacheKey, EngineCache, cpu_identity
from edge_trt_ros.engines.fusion import FusionSettings, fusion_settings
from edge_trt_ros.engines.spec import parse_device
from edge_trt_ros.errors import CudaError, EngineError
from edge_trt_ros.files import sha256_file

log = logging.getLogger("edge_trt_ros.engines.onnxruntime")

GRAPH_OPTIMIZATION = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

CUDA_PROVIDER = "CUDAExecutionProvider"
CUDA_INSTALL_HINT = (
    "install onnxruntime-gpu built for this machine's CUDA instead of onnxruntime "
    "(pip uninstall onnxruntime && pip install onnxruntime-gpu; onnxruntime-gpu 1.31 is built "
    "for CUDA 13, and onnxruntime.preload_dlls() finds the CUDA/cuDNN libraries of a CUDA "
    "PyTorch install; on Jetson use the JetPack build of onnxruntime-gpu)"
)
# ONNX Runtime captures the CUDA graph on the third run (two runs allocate memory first).
_GRAPH_WARMUP_RUNS = 3
_NOT_CAPTURABLE = "cannot use the graph capture feature"


def _profile(fusion_profile: str) -> FusionSettings:
    try:
        return fusion_settings(fusion_profile)
    except ValueError as exc:
        raise EngineError(str(exc)) from None


def session_options(
    fusion_profile: str, intra_op_threads: int = 0, *,
    optimized_model_path: str | os.PathLike[str] | None = None,
    profile_prefix: str | os.PathLike[str] | None = None,
) -> ort.SessionOptions:
    """The session options one fusion profile sets (shared with the fusion report)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = GRAPH_OPTIMIZATION[
        _profile(fusion_profile).ort_graph_optimization]
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return options


def cuda_provider_options(device_index: int, fusion_profile: str, *, stream_handle: int = 0,
                          cuda_graph: bool = False, layout: str | None = None) -> dict[str, str]:
    """CUDA execution-provider options of one fusion profile (see the fusion table);
    ``layout`` ("nchw"/"nhwc") overrides the profile's convolution layout (for comparisons).

    TF32 is off: an fp32 variant computes in fp32 (TF32 keeps 10 mantissa bits, as fp16
    does, which would blur the fp32-vs-fp16 comparison the variants exist for).
    """
    layout = layout or _profile(fusion_profile).ort_cuda_layout
    if layout not in ("nchw", "nhwc"):
        raise EngineError(f"CUDA layout {layout!r} is not 'nchw' or 'nhwc'")
    options = {
        "device_id": str(device_index),
        "prefer_nhwc": "1" if layout == "nhwc" else "0",
        "use_tf32": "0",
        "enable_cuda_graph": "1" if cuda_graph else "0",
    }
    if stream_handle:
        options["user_compute_stream"] = str(stream_handle)
        options["has_user_compute_stream"] = "1"
    return options


def cuda_provider_available() -> bool:
    return CUDA_PROVIDER in ort.get_available_providers()


@functools.cache
def _preload_cuda_libraries() -> None:
    """Let onnxruntime-gpu (>= 1.21) load the CUDA/cuDNN libraries pip installed (e.g. a CUDA
    PyTorch's); where they are system libraries (JetPack) this finds them on the default
    path. Once per process; it prints what it cannot load, and the session then says why."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # a diagnostic aid only: the session creation decides
            log.warning("onnxruntime.preload_dlls() failed (%s); relying on the library path",
                        exc)


class _CudaIo:
    """The fixed I/O of a CUDA session: one stream, device buffers bound once, pinned outputs."""

    def __init__(self, session: ort.InferenceSession, device_index: int, stream: Any) -> None:
        from edge_trt_ros.gpu import runtime as cuda

        self._cuda = cuda
        self.stream = stream
        self.device_index = device_index
        self._buffers: list[Any] = []
        try:
            self._bind(session, device_index)
        except BaseException:
            self.close()
            raise

    def _bind(self, session: ort.InferenceSession, device_index: int) -> None:
        cuda = self._cuda
        self.binding = session.io_binding()
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = _static_shape(inp)
        self.input_dtype = _numpy_type(inp)
        self.input_nbytes = int(np.prod(self.input_shape)) * self.input_dtype.itemsize
        self.input_device = self._own(cuda.DeviceBuffer(self.input_nbytes, device_index))
        self.input_host = self._own(cuda.PinnedBuffer(self.input_shape, self.input_dtype))
        self.binding.bind_input(inp.name, "cuda", device_index, self.input_dtype.type,
                                list(self.input_shape), self.input_device.ptr)
        self._outputs: list[tuple[Any, Any]] = []
        views = []
        for out in session.get_outputs():
            shape, dtype = _static_shape(out), _numpy_type(out)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            device = self._own(cuda.DeviceBuffer(nbytes, device_index))
            host = self._own(cuda.PinnedBuffer(shape, dtype))
            self.binding.bind_output(out.name, "cuda", device_index, dtype.type, list(shape),
                                     device.ptr)
            self._outputs.append((host, device))
            view = host.array.view()
            view.flags.writeable = False
            views.append(view)
        self.views: tuple[np.ndarray, ...] = tuple(views)

    def _own(self, resource: Any) -> Any:
        self._buffers.append(resource)
        return resource

    def stage_host_input(self, tensor: np.ndarray) -> None:
        """Copy a host tensor into the bound input (pinned staging, one async H2D)."""
        if tuple(tensor.shape) != self.input_shape:
            raise EngineError(f"input {self.input_name!r} expects shape {list(self.input_shape)}, "
                              f"got {list(tensor.shape)}")
        try:
            np.copyto(self.input_host.array, tensor, casting="same_kind")
        except TypeError as exc:
            raise EngineError(f"input dtype {tensor.dtype} cannot feed {self.input_dtype}: "
                              f"{exc}") from exc
        self._cuda.copy_htod_async(self.input_device, self.input_host, self.stream)

    def stage_device_input(self, ptr: int) -> None:
        """Bring an input at another device address into the bound one (a D2D copy on the
        stream: rebinding would break a captured CUDA graph)."""
        if ptr == self.input_device.ptr:
            return
        rt = self._cuda.runtime_api()
        self._cuda.check(rt.cudaMemcpyAsync(self.input_device.ptr, ptr, self.input_nbytes,
                                            rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
                                            self.stream.raw), "device-to-device input copy")

    def fetch_outputs(self) -> tuple[np.ndarray, ...]:
        for host, device in self._outputs:
            self._cuda.copy_dtoh_async(host, device, self.stream)
        self.stream.synchronize()
        return self.views

    def close(self) -> None:
        for resource in reversed(self._buffers):
            resource.close()
        self._buffers.clear()


def _static_shape(arg: Any) -> tuple[int, ...]:
    """A binding's shape with a symbolic batch dimension taken as 1; other symbols refused."""
    shape = []
    for i, dim in enumerate(arg.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif i == 0:
            shape.append(1)
        else:
            raise EngineError(f"{arg.name!r} has a dynamic dimension {dim!r} at axis {i}: the "
                              "CUDA path binds fixed buffers; export the model with a fixed "
                              "input size")
    return tuple(shape)


_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32,
               "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_}


def _numpy_type(arg: Any) -> np.dtype[Any]:
    try:
        return np.dtype(_ONNX_TYPES[arg.type])
    except KeyError:
        raise EngineError(f"{arg.name!r} has type {arg.type}, which the CUDA path cannot "
                          "bind") from None


class OnnxRuntimeEngine:
    """An ``InferenceSession`` whose graph optimisation level comes from the fusion profile.

    ``device`` ``cpu`` or ``cuda:N`` (the CUDA provider; see the module docstring).
    ``cuda_graph`` (CUDA only): None tries a CUDA graph and falls back, with a warning, when
    ONNX Runtime refuses one for this graph; True requires it; False never captures.
    ``cuda_layout`` (CUDA only) overrides the profile's convolution layout, for comparisons.
    ``optimized_model_path`` saves the graph ONNX Runtime actually runs and ``profile_prefix``
    turns on its per-node profiler; both exist for the fusion report, not the hot path.
    ``cache_dir`` (CPU): keep the graph ONNX Runtime optimised in the engine cache, keyed by
    the file, ONNX Runtime's version, this CPU and the optimisation level, and open it with
    optimisation off next time: the graph passes are most of a session's start-up (measured
    here: about 0.2 s of a fresh session against 0.03-0.06 s from the cache), which is what
    an engine switch waits for.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        precision: str = "fp32",
        fusion_profile: str = "max",
        intra_op_threads: int = 0,
        device: str = "cpu",
        optimized_model_path: str | os.PathLike[str] | None = None,
        profile_prefix: str | os.PathLike[str] | None = None,
        cuda_graph: bool | None = None,
        cuda_layout: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_batch: int = 1,
    ) -> None:
        settings = _profile(fusion_profile)
        level = settings.ort_graph_optimization
        kind, index = parse_device(device)
        self._io: _CudaIo | None = None
        self._threads = intra_op_threads
        self._max_batch = max_batch if kind == "cpu" else 1
        self._stream: Any = None
        extra: dict[str, str] = {}

        def options() -> ort.SessionOptions:
            return session_options(fusion_profile, intra_op_threads,
                                   optimized_model_path=optimized_model_path,
                                   profile_prefix=profile_prefix)

        if kind == "cuda":
            self._session, extra = self._open_cuda(model_path, options, index, fusion_profile,
                                                   cuda_graph, cuda_layout)
            providers = [CUDA_PROVIDER, "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
            if cache_dir and optimized_model_path is None and profile_prefix is None:
                self._session, hit = _cached_cpu_session(model_path, options(), level,
                                                         cache_dir)
                extra["cache"] = "hit" if hit else "built"
            else:
                self._session = _create(model_path, options(), providers, [{}])
        self._input = self._session.get_inputs()[0].name
        self._info = EngineInfo(
            backend="onnxruntime",
            backend_version=ort.__version__,
            precision=precision,
            fusion_profile=fusion_profile,
            device=device,
            model_path=str(Path(model_path)),
            engine_id=f"ort-{sha256_file(model_path)[:16]}-{level}-{intra_op_threads}"
                      + (f"-{kind}{index}" if kind == "cuda" else ""),
            settings={
                "graph_optimization": level,
                "intra_op_threads": str(intra_op_threads),
                "providers": ",".join(providers),
                "max_batch": str(self._max_batch),
                **extra,
            },
        )

    def _open_cuda(self, model_path: str | os.PathLike[str], options: Any, index: int,
                   fusion_profile: str, cuda_graph: bool | None, layout: str | None
                   ) -> tuple[ort.InferenceSession, dict[str, str]]:
        if not cuda_provider_available():
            raise EngineError(f"ONNX Runtime {ort.__version__} here has no {CUDA_PROVIDER} "
                              f"(available: {', '.join(ort.get_available_providers())}): "
                              f"{CUDA_INSTALL_HINT}")
        from edge_trt_ros.gpu import runtime as cuda

        _preload_cuda_libraries()
        try:
            self._stream = cuda.Stream(index)
        except CudaError as exc:
            raise EngineError(f"cannot use GPU {index} for ONNX Runtime: {exc}") from exc
        try:
            session, graph_note = self._cuda_session(model_path, options, index, fusion_profile,
                                                     cuda_graph, layout)
        except BaseException:
            self._close_stream()
            raise
        layout = layout or _profile(fusion_profile).ort_cuda_layout
        return session, {"cuda_graph": graph_note, "cuda_layout": layout, "tf32": "off",
                         "io_binding": "device input + device outputs -> pinned host"}

    def _cuda_session(self, model_path: str | os.PathLike[str], options: Any, index: int,
                      fusion_profile: str, cuda_graph: bool | None, layout: str | None
                      ) -> tuple[ort.InferenceSession, str]:
        """The session with its I/O bound: captured in a CUDA graph unless ``cuda_graph`` is
        False or (``None``) ONNX Runtime cannot capture this graph; (session, what happened)."""
        providers = [CUDA_PROVIDER, "CPUExecutionProvider"]
        handle = self._stream.handle

        def open_bound(graph: bool) -> ort.InferenceSession:
            session = _create(model_path, options(), providers, [cuda_provider_options(
                index, fusion_profile, stream_handle=handle, cuda_graph=graph, layout=layout),
                {}])
            self._io = _CudaIo(session, index, self._stream)
            return session

        if cuda_graph is False:
            return open_bound(False), "off (requested)"
        try:
            session = open_bound(True)
            try:  # ONNX Runtime captures on the third run: do it now, off the hot path
                for _ in range(_GRAPH_WARMUP_RUNS):
                    session.run_with_iobinding(self._io.binding)  # type: ignore[union-attr]
                self._stream.synchronize()
            except Exception as exc:
                raise EngineError(f"ONNX Runtime could not capture {model_path} in a CUDA "
                                  f"graph on cuda:{index}: {exc}") from exc
            return session, "on"
        except EngineError as exc:
            if self._io is not None:
                self._io.close()
                self._io = None
            if cuda_graph:
                raise
            if _NOT_CAPTURABLE in str(exc):
                note = ("off: ONNX Runtime places some nodes of this graph outside the CUDA "
                        "provider (CPU kernels or copies), so it cannot be captured")
            elif "could not capture" in str(exc):
                note = f"off: capture failed ({str(exc.__cause__)[:160]})"
            else:
                raise
            log.warning("%s on cuda:%d: CUDA graph %s; it runs node by node", model_path,
                        index, note)
            return open_bound(False), note

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def max_batch(self) -> int:
        """Frames one :meth:`infer` may carry: the dynamic-batch copy's limit on the CPU."""
        return self._max_batch

    @property
    def concurrent(self) -> bool:
        """On the CPU with one intra-op thread, yes: ONNX Runtime's ``run`` is thread-safe
        and then runs on the calling thread, so two workers on one session serve as many
        frames as two sessions (measured on 2 cores: 75.5 against 74.5 frames/s for fp32).
        A session with a thread pool would make its workers queue for that one pool, and
        the CUDA path binds one set of buffers: one frame at a time, one engine each."""
        return self._io is None and self._threads == 1

    # --- device I/O (cuda:N only) --------------------------------------------------------

    @property
    def input_device_ptr(self) -> int | None:
        """The bound input's device address (None on the CPU): GPU preprocessing that writes
        here on :attr:`stream` runs with ``infer_device(engine.input_device_ptr)``."""
        return None if self._io is None else int(self._io.input_device.ptr)

    @property
    def stream(self) -> Any:
        """The engine's CUDA stream (a ``gpu.runtime.Stream``; None on the CPU): ONNX Runtime
        computes on it, so work queued here before ``infer_device`` is ordered before it."""
        if "_session" not in self.__dict__:
            raise EngineError("engine was released")
        return self._stream

    def infer_device(self, input_ptr: int) -> Sequence[np.ndarray]:
        """Run on an input already on the GPU (written on :attr:`stream`); outputs are
        read-only views of pinned buffers, valid until the next call."""
        io = self._cuda_io()
        io.stage_device_input(int(input_ptr))
        return self._run_bound(io)

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        """One batch from host memory. On the GPU, outputs are views valid until the next
        call (copy them to keep them)."""
        if self._io is not None:
            self._io.stage_host_input(tensor)
            return self._run_bound(self._io)
        try:
            return self._session.run(None, {self._input: tensor})  # type: ignore[no-any-return]
        except AttributeError as exc:
            raise EngineError("engine was released") from exc
        except Exception as exc:  # ORT's Fail/InvalidArgument: a graph that cannot run this input
            raise EngineError(f"ONNX Runtime on {self._info.device} failed: {exc}") from exc

    def _cuda_io(self) -> _CudaIo:
        if self._io is None:
            if "_session" not in self.__dict__:
                raise EngineError("engine was released")
            raise EngineError(f"infer_device needs the engine on a GPU; this one runs on "
                              f"{self._info.device}")
        return self._io

    def _run_bound(self, io: _CudaIo) -> Sequence[np.ndarray]:
        try:
            self._session.run_with_iobinding(io.binding)
        except AttributeError as exc:
            raise EngineError("engine was released") from exc
        except Exception as exc:  # ORT's Fail/RuntimeException: CUDA errors inside a kernel
            raise EngineError(f"ONNX Runtime on {self._info.device} failed: {exc}") from exc
        return io.fetch_outputs()

    def end_profiling(self) -> Path:
        """Stop the profiler; the path of its Chrome-trace JSON (one event per node run)."""
        return Path(self._session.end_profiling())

    def release(self) -> None:
        """Free the session, then the buffers and the stream it computes on."""
        if self._stream is not None and not self._stream.closed:
            self._stream.synchronize()
        self.__dict__.pop("_session", None)
        if self._io is not None:
            self._io.close()
            self._io = None
        self._close_stream()


def _cached_cpu_session(model_path: str | os.PathLike[str], options: ort.SessionOptions,
                        level: str, cache_dir: str | os.PathLike[str]
                        ) -> tuple[ort.InferenceSession, bool]:
    """(session, from the cache?) on the CPU provider, through the engine cache."""
    key = CacheKey.for_file(model_path, backend="onnxruntime-optimized-graph",
                            backend_version=ort.__version__, device=cpu_identity(),
                            settings={"graph_optimization": level})
    cache = EngineCache(cache_dir, suffix=".ort.onnx")

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="edge_trt_ort.") as tmp:
            out = Path(tmp) / "optimized.onnx"
            options.optimized_model_filepath = str(out)
            # ONNX Runtime warns that a graph optimised at ORT_ENABLE_ALL may hold this CPU's
            # layouts and belongs to this machine only: the cache key carries the CPU's
            # identity for exactly that reason, so the warning would say nothing new.
            severity, options.log_severity_level = options.log_severity_level, 3
            _create(model_path, options, ["CPUExecutionProvider"], [{}])
            options.optimized_model_filepath = ""
            options.log_severity_level = severity
            return out.read_bytes()

    def load(blob: bytes) -> ort.InferenceSession:
        # The graph is optimised already: opening it must not optimise again.
        options.graph_optimization_level = GRAPH_OPTIMIZATION["none"]
        return ort.InferenceSession(blob, sess_options=options,
                                    providers=["CPUExecutionProvider"])

    session, built = cache.get_or_build(key, build, load)
    return session, not built


def _create(model_path: str | os.PathLike[str], options: ort.SessionOptions,
            providers: list[str], provider_options: list[dict[str, str]]
            ) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=providers,
                                    provider_options=provider_options)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
        raise EngineError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
