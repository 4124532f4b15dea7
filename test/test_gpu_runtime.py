"""cuda-python wrapper: error unpacking and import guards everywhere; buffers, streams, copies
and device identity for real where a CUDA device answers (skipped otherwise)."""

from __future__ import annotations

import ctypes
import enum
import gc
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_trt_ros.errors import CudaError, EngineError
from edge_trt_ros.gpu import runtime
from edge_trt_ros.gpu.runtime import (
    DeviceBuffer,
    Event,
    PinnedBuffer,
    Stream,
    check,
    copy_dtoh_async,
    copy_htod_async,
    cuda_available,
    cuda_unavailable_reason,
    hint_for,
)

ROOT = Path(__file__).resolve().parents[1]


class FakeError(enum.IntEnum):
    """Stands in for cuda-python's error enums (IntEnum-like, with .name)."""

    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorIllegalAddress = 700
    cudaErrorSomethingNew = 9999


# --- everywhere: no cuda-python needed -----------------------------------------------------


def test_check_unpacks_values_on_success():
    assert check((FakeError.cudaSuccess,)) is None
    assert check((FakeError.cudaSuccess, 42)) == 42
    assert check((FakeError.cudaSuccess, 1, "two")) == (1, "two")
    assert check(FakeError.cudaSuccess) is None  # a bare status, not a tuple


def test_check_raises_cuda_error_with_name_and_action():
    with pytest.raises(CudaError) as info:
        check((FakeError.cudaErrorMemoryAllocation, None), "cudaMalloc(1 GB)")
    err = info.value
    assert isinstance(err, EngineError)  # the node's engine-error handling catches it
    assert err.name == "cudaErrorMemoryAllocation" and err.code == 2
    assert str(err).startswith("cudaMalloc(1 GB) failed: cudaErrorMemoryAllocation")
    assert "out of memory" in str(err)


def test_check_unknown_codes_still_say_something_useful():
    with pytest.raises(CudaError, match="CUDA_LAUNCH_BLOCKING=1"):
        check((FakeError.cudaErrorSomethingNew,))
    with pytest.raises(CudaError, match="error 77"):
        check((77,))


def test_check_rejects_an_empty_result():
    with pytest.raises(TypeError):
        check(())


@pytest.mark.parametrize("name, words", [
    ("cudaErrorMemoryAllocation", "out of memory"),
    ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
    ("cudaErrorInsufficientDriver", "nvidia-smi"),
    ("cudaErrorNoDevice", "nvidia-smi"),
    ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "driver's CUDA version"),
    ("cudaErrorIllegalAddress", "restart the node"),
    ("NVRTC_ERROR_COMPILATION", "NVRTC log"),
])
def test_hints_tell_the_engineer_what_to_do(name, words):
    assert words in hint_for(name)


def _block_cuda_python(monkeypatch):
    for mod in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.bindings.driver",
                "cuda.bindings.nvrtc", "cuda.cudart", "cuda.cuda", "cuda.nvrtc"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes `import` raise ImportError


def test_without_cuda_python_nothing_raises_until_used(monkeypatch):
    _block_cuda_python(monkeypatch)
    assert cuda_available() is False
    reason = cuda_unavailable_reason()
    assert reason is not None and "cuda-python is not importable" in reason
    with pytest.raises(CudaError, match="pip install"):
        Stream()
    with pytest.raises(CudaError, match="cuda-python"):
        DeviceBuffer(16)


def test_importing_the_gpu_package_does_not_import_cuda_python():
    code = ("import sys, edge_trt_ros.gpu.runtime, edge_trt_ros.gpu.letterbox; "
            "print(sorted(m for m in sys.modules if m == 'cuda' or m.startswith('cuda.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_sizes_are_validated_before_touching_cuda(monkeypatch):
    _block_cuda_python(monkeypatch)
    with pytest.raises(ValueError, match="positive"):
        DeviceBuffer(0)
    with pytest.raises(ValueError, match="positive"):
        PinnedBuffer((0, 3))
    strided = np.zeros((4, 6), dtype=np.uint8)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        copy_htod_async(0x1000, strided, None)
    with pytest.raises(ValueError, match="read-only"):
        copy_dtoh_async(np.frombuffer(b"abcd", dtype=np.uint8), 0x1000, None)
    with pytest.raises(ValueError, match="8-byte host buffer"):
        copy_htod_async(0x1000, np.zeros(8, np.uint8), None, nbytes=9)
    with pytest.raises(TypeError, match="PinnedBuffer or numpy array"):
        copy_htod_async(0x1000, b"bytes", None)  # type: ignore[arg-type]


# --- on a CUDA device ----------------------------------------------------------------------

gpu = pytest.mark.skipif(not cuda_available(),
                         reason=f"no CUDA device: {cuda_unavailable_reason()}")


@gpu
def test_device_identity_names_gpu_and_architecture():
    major, minor = runtime.compute_capability()
    ident = runtime.device_identity()
    assert re.fullmatch(r".+ \(sm_\d+\)", ident), ident
    assert ident.endswith(f"(sm_{major}{minor})")
    assert runtime.device_name() in ident and "\0" not in ident
    bandwidth = runtime.device_memory_bandwidth_gbps()
    assert bandwidth is None or 10 < bandwidth < 100_000
    versions = runtime.cuda_versions()
    assert {"cuda_python", "driver_cuda", "runtime_cuda", "nvrtc"} <= versions.keys()


@gpu
def test_stream_handle_sync_and_idempotent_close():
    with Stream() as stream:
        assert isinstance(stream.handle, int) and stream.handle != 0
        stream.synchronize()
    assert stream.closed
    stream.close()  # second close: no-op
    with pytest.raises(CudaError, match="after close"):
        _ = stream.handle
    with pytest.raises(CudaError, match="after close"):
        stream.synchronize()


@gpu
def test_pinned_buffer_is_a_zero_copy_view():
    with PinnedBuffer((2, 3, 4), np.float32) as pinned:
        assert pinned.array.shape == (2, 3, 4) and pinned.array.dtype == np.float32
        assert pinned.array.ctypes.data == pinned.ptr and pinned.nbytes == 96
        pinned.array[...] = 7.0
        raw = np.ctypeslib.as_array((ctypes.c_float * 24).from_address(pinned.ptr))
        assert (raw == 7.0).all()
    with pytest.raises(CudaError):
        _ = pinned.array


@gpu
def test_round_trip_through_device_from_pinned_and_pageable_memory():
    data = np.random.default_rng(1).integers(0, 255, 1 << 20, dtype=np.uint8)
    with Stream() as stream, DeviceBuffer(data.nbytes) as dev, \
            PinnedBuffer(data.shape) as src, PinnedBuffer(data.shape) as back:
        src.array[:] = data
        copy_htod_async(dev, src, stream)
        copy_dtoh_async(back, dev, stream)
        stream.synchronize()
        assert np.array_equal(back.array, data)

        pageable_back = np.zeros_like(data)
        copy_htod_async(dev, data[::-1].copy(), stream)
        copy_dtoh_async(pageable_back, dev, stream, nbytes=1000)
        stream.synchronize()
        assert np.array_equal(pageable_back[:1000], data[::-1][:1000])
        assert not pageable_back[1000:].any()

        with pytest.raises(ValueError, match="device buffer"):
            copy_htod_async(dev, np.zeros(data.nbytes + 1, np.uint8), stream)


@gpu
def test_a_failing_cuda_call_becomes_a_cuda_error():
    rt = runtime.runtime_api()
    with pytest.raises(CudaError) as info:
        check(rt.cudaMalloc(1 << 60), "cudaMalloc(1 EiB)")
    assert info.value.name == "cudaErrorMemoryAllocation"
    assert "out of memory" in str(info.value)
    with DeviceBuffer(64) as buf:  # not a sticky error: the context still works
        assert buf.ptr != 0


@gpu
def test_unclosed_buffers_are_freed_when_collected():
    buf = DeviceBuffer(1 << 20)
    fin = buf._fin
    assert fin.alive
    del buf
    gc.collect()
    assert not fin.alive
    closed = DeviceBuffer(16)
    closed.close()
    closed.close()
    with pytest.raises(CudaError, match="after close"):
        _ = closed.ptr


@gpu
def test_events_time_work_on_a_stream():
    data = np.ones(8 << 20, dtype=np.uint8)
    with Stream() as stream, DeviceBuffer(data.nbytes) as dev, Event() as start, \
            Event() as end:
        start.record(stream)
        copy_htod_async(dev, data, stream)
        end.record(stream)
        end.synchronize()
        assert end.elapsed_ms(start) > 0.0


@gpu
def test_buffers_work_from_another_thread():
    errors: list[BaseException] = []
    result = np.zeros(256, dtype=np.uint8)

    def worker() -> None:
        try:
            with Stream() as stream, DeviceBuffer(256) as dev:
                copy_htod_async(dev, np.arange(256, dtype=np.uint8), stream)
                copy_dtoh_async(result, dev, stream)
                stream.synchronize()
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert not errors, errors
    assert np.array_equal(result, np.arange(256, dtype=np.uint8))
