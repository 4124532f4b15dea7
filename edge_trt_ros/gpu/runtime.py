"""Small, deterministic wrappers over cuda-python for the TensorRT backend and GPU preprocessing.

Why cuda-python: NVIDIA's TensorRT samples moved to it from PyCUDA, it ships for JetPack,
and it hands out the raw handles TensorRT wants (``execute_async_v3(stream.handle)``).
It is imported on first use, so this module imports on machines without it (CPU CI).

Every resource is freed by ``close()`` (idempotent) or a ``with`` block. One that is
garbage-collected unclosed is freed then, but never during interpreter shutdown, when the
CUDA libraries may already be unloaded; the driver reclaims it with the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType, TracebackType
from typing import Any, TypeVar

import numpy as np

from edge_trt_ros.errors import CudaError

INSTALL_HINT = (
    "install cuda-python for the CUDA version of this machine's driver "
    "(pip install 'cuda-python>=12'; on Jetson the JetPack one, e.g. 'cuda-python==12.6.*')"
)

# Error-name fragments -> what a field engineer can do about it. First match wins.
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("MemoryAllocation", "OUT_OF_MEMORY"),
     "the GPU is out of memory: stop other GPU processes (nvidia-smi; tegrastats on Jetson) "
     "or run a smaller model/variant"),
    (("InsufficientDriver", "NoDevice", "NO_DEVICE", "NOT_INITIALIZED", "DEINITIALIZED",
      "DevicesUnavailable", "SystemDriverMismatch", "CompatNotSupported", "InitializationError"),
     "no usable NVIDIA GPU/driver: check `nvidia-smi` (Jetson: that the container runs with "
     "the NVIDIA runtime); the driver must support the CUDA version of cuda-python"),
    (("UnsupportedPtxVersion", "UNSUPPORTED_PTX_VERSION", "NoKernelImageForDevice",
      "NO_BINARY_FOR_GPU", "INVALID_OPTION"),
     "cuda-python/NVRTC and this GPU or driver disagree on the CUDA version: install the "
     "cuda-python (and NVRTC) of the driver's CUDA version (nvidia-smi shows it)"),
    (("IllegalAddress", "ILLEGAL_ADDRESS", "LaunchFailure", "LAUNCH_FAILED", "Assert",
      "IllegalInstruction", "MisalignedAddress", "HardwareStackError", "InvalidPc"),
     "a GPU kernel crashed and this process's CUDA context is unusable: restart the node; "
     "if it repeats, report it with this log (CUDA_LAUNCH_BLOCKING=1 pins down the call)"),
    (("COMPILATION",),
     "the GPU preprocessing kernel did not compile: report it with the NVRTC log and version"),
)
_DEFAULT_HINT = "run with CUDA_LAUNCH_BLOCKING=1 to find the call that caused it"



def _import(current: str, legacy: str) -> ModuleType:
    try:
        return importlib.import_module(current)
    except ImportError:
        pass
    try:  # cuda-python < 12.6 (JetPack 6.0 era) spells it cuda.cudart / cuda.cuda / cuda.nvrtc
        return importlib.import_module(legacy)
    except ImportError as exc:
        raise CudaError(f"cuda-python is not importable ({exc}): {INSTALL_HINT}",
                        "ImportError") from exc


def runtime_api() -> ModuleType:
    """The CUDA runtime bindings (``cudart``); CudaError with an install hint if missing."""
    return _import("cuda.bindings.runtime", "cuda.cudart")


def driver_api() -> ModuleType:
    """The CUDA driver bindings (module loading and kernel launches)."""
    return _import("cuda.bindings.driver", "cuda.cuda")


def nvrtc_api() -> ModuleType:
    """The NVRTC bindings (runtime compilation of the preprocessing kernel)."""
    return _import("cuda.bindings.nvrtc", "cuda.nvrtc")


def hint_for(error_name: str) -> str:
    """What to do about a CUDA error, by its name."""
    for fragments, hint in _HINTS:
        if any(f in error_name for f in fragments):
            return hint
    return _DEFAULT_HINT


def _error_string(err: Any) -> str:
    """CUDA's own description of an error code; '' when it cannot be had."""
    lookups: dict[str, Callable[[], Any]] = {
        "cudaError_t": lambda: runtime_api().cudaGetErrorString(err),
        "CUresult": lambda: driver_api().cuGetErrorString(err),
        "nvrtcResult": lambda: nvrtc_api().nvrtcGetErrorString(err),
    }
    lookup = lookups.get(type(err).__name__)
    if lookup is None:
        return ""
    try:
        status, text = lookup()
        if int(status) != 0:
            return ""
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    except Exception:  # the driver library may be missing: the name alone must do
        return ""


def check(result: Any, what: str = "CUDA call") -> Any:
    """Unpack cuda-python's ``(err, *values)`` result.

    Returns None, the single value, or the tuple of values; raises CudaError naming the
    call, the CUDA error and what to do about it.
    """
    if isinstance(result, tuple):
        if not result:
            raise TypeError(f"{what}: empty result, expected (err, *values)")
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    code = int(err)
    if code == 0:
        if not values:
            return None
        return values[0] if len(values) == 1 else values
    name = str(getattr(err, "name", "") or f"error {code}")
    text = _error_string(err)
    detail = f"{name} ({text})" if text and text != name else name
    raise CudaError(f"{what} failed: {detail}. {hint_for(name)}", name, code)


def cuda_unavailable_reason(index: int = 0) -> str | None:
    """Why GPU ``index`` cannot be used (a log line), or None when it can. Never raises."""
    try:
        count = check(runtime_api().cudaGetDeviceCount(), "cudaGetDeviceCount")
    except CudaError as exc:
        return str(exc)
    except Exception as exc:  # e.g. libcuda.so missing: cuda-python raises its own errors
        return f"CUDA driver not loadable ({type(exc).__name__}: {exc}); {hint_for('NoDevice')}"
    if count <= index:
        return f"no CUDA device {index} ({count} visible; check CUDA_VISIBLE_DEVICES)"
    return None


def cuda_available() -> bool:
    """True when cuda-python imports and a CUDA device answers; never raises."""
    return cuda_unavailable_reason() is None


_thread = threading.local()


def use_device(index: int = 0) -> None:
    """Make device ``index``'s primary context current on the calling thread.

    Driver-API launches need a current context; ROS callbacks run on executor threads,
    so every entry point calls this (a thread-local lookup after the first time).
    """
    if getattr(_thread, "device", None) == index:
        return
    rt = runtime_api()
    check(rt.cudaSetDevice(index), f"cudaSetDevice({index})")
    check(rt.cudaFree(0), "CUDA context initialisation")  # CUDA < 12 initialises lazily
    _thread.device = index


def _release(free: Callable[[Any], Any], handle: Any) -> None:
    with contextlib.suppress(Exception):  # context already destroyed: nothing left to free
        free(handle)


def _finalizer(owner: object, free: Callable[[Any], Any], handle: Any) -> weakref.finalize:
    fin = weakref.finalize(owner, _release, free, handle)
    fin.atexit = False  # never at interpreter shutdown, when the CUDA libraries may be gone
    return fin


_R = TypeVar("_R", bound="Resource")


class Resource:
    """A closeable CUDA resource: ``close()`` is idempotent and ``with`` closes it.

    Subclasses set ``self._fin`` (a weakref.finalize that frees) and ``_kind`` (for errors).
    """

    _fin: weakref.finalize
    _kind = "CUDA resource"

    @property
    def closed(self) -> bool:
        return not self._fin.alive

    def _check_open(self) -> None:
        if not self._fin.alive:
            raise CudaError(f"{self._kind} used after close(): a bug in the caller", "Closed")

    def close(self) -> None:
        """Free now; further calls do nothing."""
        self._fin()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Stream(Resource):
    """A non-blocking CUDA stream: no implicit sync with the legacy default stream."""

    _kind = "CUDA stream"

    def __init__(self, device: int = 0) -> None:
        use_device(device)
        rt = runtime_api()
        self.device = device
        self._rt = rt
        self._raw = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking),
                          "cudaStreamCreateWithFlags")
        self._handle = int(self._raw)
        self._fin = _finalizer(self, rt.cudaStreamDestroy, self._raw)

    @property
    def handle(self) -> int:
        """The cudaStream_t as an int (what TensorRT's ``execute_async_v3`` takes)."""
        self._check_open()
        return self._handle

    @property
    def raw(self) -> Any:
        """The cuda-python ``cudaStream_t`` object."""
        self._check_open()
        return self._raw

    def synchronize(self) -> None:
        """Block until all work queued on this stream has finished."""
        self._check_open()
        check(self._rt.cudaStreamSynchronize(self._raw), "cudaStreamSynchronize")


StreamLike = Stream | int | None


def stream_arg(stream: StreamLike) -> Any:
    """A cudaStream_t for a Stream, a raw handle, or None (the legacy default stream)."""
    if isinstance(stream, Stream):
        return stream.raw
    return runtime_api().cudaStream_t(int(stream or 0))


class DeviceBuffer(Resource):
    """``nbytes`` of device memory (cudaMalloc); ``ptr`` is what TensorRT binds."""

    _kind = "device buffer"

    def __init__(self, nbytes: int, device: int = 0) -> None:
        if nbytes <= 0:
            raise ValueError(f"device buffer of {nbytes} bytes: size must be positive")
        use_device(device)
        rt = runtime_api()
        self.nbytes = int(nbytes)
        self.device = device
        self._ptr = int(check(rt.cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes} bytes)"))
        self._fin = _finalizer(self, rt.cudaFree, self._ptr)

    @property
    def ptr(self) -> int:
        self._check_open()
        return self._ptr


class PinnedBuffer(Resource):
    """Page-locked host memory (cudaMallocHost) with a zero-copy numpy view.

    Pinned memory makes host<->device copies truly asynchronous and about twice as fast as
    from pageable memory. ``array`` must not be used after ``close()``: numpy cannot know
    the memory is gone.
    """

    _kind = "pinned host buffer"

    def __init__(self, shape: int | Sequence[int], dtype: Any = np.uint8) -> None:
        self.shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        if self.nbytes <= 0:
            raise ValueError(f"pinned buffer of shape {self.shape}: size must be positive")
        rt = runtime_api()
        self._ptr = int(check(rt.cudaMallocHost(self.nbytes),
                              f"cudaMallocHost({self.nbytes} bytes)"))
        self._fin = _finalizer(self, rt.cudaFreeHost, self._ptr)
        raw = (ctypes.c_ubyte * self.nbytes).from_address(self._ptr)
        self._array = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    @property
    def ptr(self) -> int:
        self._check_open()
        return self._ptr

    @property
    def array(self) -> np.ndarray:
        self._check_open()
        return self._array


HostBuffer = PinnedBuffer | np.ndarray
DevicePointer = DeviceBuffer | int


def _host(buf: HostBuffer, role: str, writable: bool) -> tuple[int, int]:
    if isinstance(buf, PinnedBuffer):
        return buf.ptr, buf.nbytes
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{role} must be a PinnedBuffer or numpy array, not {type(buf).__name__}")
    if not buf.flags.c_contiguous:
        raise ValueError(f"{role} array must be C-contiguous (np.ascontiguousarray) for a copy")
    if writable and not buf.flags.writeable:
        raise ValueError(f"{role} array is read-only")
    return int(buf.ctypes.data), int(buf.nbytes)


def _device(buf: DevicePointer) -> tuple[int, int | None]:
    if isinstance(buf, DeviceBuffer):
        return buf.ptr, buf.nbytes
    return int(buf), None


def _copy_size(host_bytes: int, device_bytes: int | None, nbytes: int | None) -> int:
    n = host_bytes if nbytes is None else int(nbytes)
    if n < 0 or n > host_bytes:
        raise ValueError(f"copy of {n} bytes from/to a {host_bytes}-byte host buffer")
    if device_bytes is not None and n > device_bytes:
        raise ValueError(f"copy of {n} bytes from/to a {device_bytes}-byte device buffer")
    return n


def copy_htod_async(dst: DevicePointer, src: HostBuffer, stream: StreamLike,
                    nbytes: int | None = None) -> None:
    """Queue a host->device copy of ``src`` (all of it unless ``nbytes``) on ``stream``.

    From pinned memory the call returns at once: keep ``src`` unchanged until the stream
    has passed this point. From pageable memory CUDA stages the data before returning
    (and waits for the stream first), so ``src`` may be reused at once.
    """
    sptr, sbytes = _host(src, "source", writable=False)
    dptr, dbytes = _device(dst)
    n = _copy_size(sbytes, dbytes, nbytes)
    rt = runtime_api()
    check(rt.cudaMemcpyAsync(dptr, sptr, n, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                             stream_arg(stream)), f"host-to-device copy of {n} bytes")


def copy_dtoh_async(dst: HostBuffer, src: DevicePointer, stream: StreamLike,
                    nbytes: int | None = None) -> None:
    """Queue a device->host copy into ``dst``; read ``dst`` only after a synchronize."""
    dptr_host, hbytes = _host(dst, "destination", writable=True)
    sptr, sbytes = _device(src)
    n = _copy_size(hbytes, sbytes, nbytes)
    rt = runtime_api()
    check(rt.cudaMemcpyAsync(dptr_host, sptr, n, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                             stream_arg(stream)), f"device-to-host copy of {n} bytes")


class Event(Resource):
    """A CUDA event, for GPU-side timing and cross-stream ordering."""

    _kind = "CUDA event"

    def __init__(self, timing: bool = True, device: int = 0) -> None:
        use_device(device)
        rt = runtime_api()
        self._rt = rt
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        self._raw = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")
        self._fin = _finalizer(self, rt.cudaEventDestroy, self._raw)

    def record(self, stream: StreamLike) -> None:
        self._check_open()
        check(self._rt.cudaEventRecord(self._raw, stream_arg(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        self._check_open()
        check(self._rt.cudaEventSynchronize(self._raw), "cudaEventSynchronize")

    def elapsed_ms(self, since: Event) -> float:
        """Milliseconds from ``since`` to this event (both recorded and completed)."""
        self._check_open()
        since._check_open()
        return float(check(self._rt.cudaEventElapsedTime(since._raw, self._raw),
                           "cudaEventElapsedTime"))


def compute_capability(index: int = 0) -> tuple[int, int]:
    rt = runtime_api()
    attr = rt.cudaDeviceAttr
    major = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, index),
                  "cudaDeviceGetAttribute(compute capability)")
    minor = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, index),
                  "cudaDeviceGetAttribute(compute capability)")
    return int(major), int(minor)


def device_name(index: int = 0) -> str:
    props = check(runtime_api().cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip()


def device_identity(index: int = 0) -> str:
    """'NVIDIA H100 80GB HBM3 (sm_90)': the GPU part of an engine cache key.

    TensorRT plans are specific to the GPU model and compute capability.
    """
    major, minor = compute_capability(index)
    return f"{device_name(index)} (sm_{major}{minor})"


def device_memory_bandwidth_gbps(index: int = 0) -> float | None:
    """Theoretical DRAM bandwidth (GB/s) from the memory clock and bus width; None if the
    driver does not report them (some integrated GPUs)."""
    try:
        rt = runtime_api()
        attr = rt.cudaDeviceAttr
        clock_khz = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrMemoryClockRate, index))
        bus_bits = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrGlobalMemoryBusWidth, index))
    except (CudaError, AttributeError):
        return None
    if not clock_khz or not bus_bits:
        return None
    return 2.0 * clock_khz * 1e3 * (bus_bits / 8) / 1e9  # double data rate


def _version(code: int) -> str:
    return f"{code // 1000}.{(code % 1000) // 10}"


def cuda_versions() -> dict[str, str]:
    """cuda-python, driver, runtime and NVRTC versions, for logs and result records."""
    out: dict[str, str] = {}
    with contextlib.suppress(ImportError, AttributeError):
        out["cuda_python"] = str(importlib.import_module("cuda.bindings").__version__)
    try:
        rt = runtime_api()
        driver = int(check(rt.cudaDriverGetVersion()))
        out["driver_cuda"] = _version(driver) if driver else "no driver"
        out["runtime_cuda"] = _version(int(check(rt.cudaRuntimeGetVersion())))
        major, minor = check(nvrtc_api().nvrtcVersion())
        out["nvrtc"] = f"{major}.{minor}"
    except Exception:  # partial answers are still worth recording
        pass
    return out
