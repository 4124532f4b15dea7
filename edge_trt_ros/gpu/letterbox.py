"""Letterbox, normalise and reorder a camera frame on the GPU, in one kernel.

Why: when the engine runs on the GPU, the CPU path resizes a 1080p frame, makes three
normalising passes and then copies a 2.4 MB float tensor to the device. Here the uint8
frame goes to the device once and a single kernel writes the engine's input binding
(float32 [1,3,H,W] or [1,H,W,3], RGB, 0..1, letterbox pad included).

The result matches :class:`edge_trt_ros.vision.letterbox.Letterbox` (bit for bit against
OpenCV 5.0 in every case tested): same geometry (:func:`letterbox_geometry`), and OpenCV's
INTER_LINEAR fixed-point arithmetic for uint8 (11-bit weights per axis) reproduced with
sampling tables computed on the host exactly as OpenCV computes them. Models calibrated or
validated on the CPU path see the same input on the GPU path. The kernel is compiled with
NVRTC once per process and device; a frame costs one host-to-device copy and one launch,
nothing is built per frame.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_trt_ros.gpu.runtime import (
    DeviceBuffer,
    Resource,
    Stream,
    check,
    compute_capability,
    copy_dtoh_async,
    driver_api,
    nvrtc_api,
    runtime_api,
    use_device,
)
from edge_trt_ros.vision.image import ImageView
from edge_trt_ros.vision.letterbox import PAD_VALUE, LetterboxGeometry, letterbox_geometry

KERNEL_NAME = "letterbox_u8_to_f32"
BLOCK = (32, 8)  # 256 threads; 32 wide so NCHW stores coalesce along a row

# OpenCV INTER_RESIZE_COEF_BITS: weights are 11-bit fixed point on each axis.
COEF_SCALE = 2048

KERNEL_SOURCE = r"""
// x taps: (first source byte, second source byte, weight0, weight1) per resized column;
// y taps: (first source row, second source row, weight0, weight1) per resized row.
__device__ __forceinline__ int lerp_u8(const unsigned char* row0, const unsigned char* row1,
                                       int4 tx, int4 ty, int c)
{
    int h0 = row0[tx.x + c] * tx.z + row0[tx.y + c] * tx.w;
    int h1 = row1[tx.x + c] * tx.z + row1[tx.y + c] * tx.w;
    // OpenCV's vertical pass for uint8 (VResizeLinearVec_32s8u): drop 4 bits, take the high
    // half of a 16x16-bit product, round away the last 2 bits.
    int v = (((ty.z * (h0 >> 4)) >> 16) + ((ty.w * (h1 >> 4)) >> 16) + 2) >> 2;
    return min(max(v, 0), 255);
}

extern "C" __global__ void letterbox_u8_to_f32(
    const unsigned char* __restrict__ src, int src_pitch, int channels,
    int r_ch, int g_ch, int b_ch,
    const int4* __restrict__ xtaps, const int4* __restrict__ ytaps,
    float* __restrict__ dst, int dst_w, int dst_h,
    int off_x, int off_y, int rw, int rh, int nhwc, float scale, float pad)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    const int rx = x - off_x;
    const int ry = y - off_y;
    float r = pad, g = pad, b = pad;
    if (rx >= 0 && rx < rw && ry >= 0 && ry < rh) {
        const int4 tx = xtaps[rx];
        const int4 ty = ytaps[ry];
        const unsigned char* row0 = src + (size_t)ty.x * src_pitch;
        const unsigned char* row1 = src + (size_t)ty.y * src_pitch;
        r = (float)lerp_u8(row0, row1, tx, ty, r_ch) * scale;
        g = (float)lerp_u8(row0, row1, tx, ty, g_ch) * scale;
        b = (float)lerp_u8(row0, row1, tx, ty, b_ch) * scale;
    }
    const size_t i = (size_t)y * dst_w + x;
    if (nhwc) {
        dst[3 * i] = r;
        dst[3 * i + 1] = g;
        dst[3 * i + 2] = b;
    } else {
        const size_t plane = (size_t)dst_w * dst_h;
        dst[i] = r;
        dst[plane + i] = g;
        dst[2 * plane + i] = b;
    }
}
"""

# Kernel parameters in signature order, with the numpy type each is stored as.
_PARAMS: tuple[tuple[str, type], ...] = (
    ("src", np.uint64), ("src_pitch", np.int32), ("channels", np.int32),
    ("r_ch", np.int32), ("g_ch", np.int32), ("b_ch", np.int32),
    ("xtaps", np.uint64), ("ytaps", np.uint64),
    ("dst", np.uint64), ("dst_w", np.int32), ("dst_h", np.int32),
    ("off_x", np.int32), ("off_y", np.int32), ("rw", np.int32), ("rh", np.int32),
    ("nhwc", np.int32), ("scale", np.float32), ("pad", np.float32),
)


def _taps(src: int, dst: int, zero_border_fraction: bool) -> np.ndarray:
    """OpenCV's INTER_LINEAR sampling for one axis: (dst, 4) int32 of i0, i1, w0, w1."""
    scale = 1.0 / (dst / src)  # OpenCV inverts the inverse scale, in double
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i = np.floor(f)
    f = (f - i).astype(np.float32)
    i = i.astype(np.int64)
    if zero_border_fraction:  # OpenCV does this for columns only; rows are just clamped
        low, high = i < 0, i >= src - 1
        f[low | high] = 0.0
        i[low] = 0
        i[high] = src - 1
    taps = np.empty((dst, 4), dtype=np.int32)
    taps[:, 0] = np.clip(i, 0, src - 1)
    taps[:, 1] = np.clip(i + 1, 0, src - 1)
    # np.rint rounds half to even, as OpenCV's saturate_cast<short>(float) does.
    taps[:, 2] = np.rint((np.float32(1.0) - f) * np.float32(COEF_SCALE))
    taps[:, 3] = np.rint(f * np.float32(COEF_SCALE))
    return taps


def column_taps(src_w: int, dst_w: int, channels: int) -> np.ndarray:
    """Per output column: byte offsets of the two source pixels and their weights."""
    taps = _taps(src_w, dst_w, zero_border_fraction=True)
    taps[:, :2] *= channels
    return taps


def row_taps(src_h: int, dst_h: int) -> np.ndarray:
    """Per output row: the two source rows and their weights."""
    return _taps(src_h, dst_h, zero_border_fraction=False)


def launch_config(out_hw: tuple[int, int], block: tuple[int, int] = BLOCK
                  ) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) covering every pixel of an ``out_hw`` tensor, one thread per pixel."""
    h, w = out_hw
    bx, by = block
    if h <= 0 or w <= 0:
        raise ValueError(f"empty network input {w}x{h}")
    return (-(-w // bx), -(-h // by), 1), (bx, by, 1)


def _program_log(nv: Any, prog: Any) -> str:
    try:
        size = check(nv.nvrtcGetProgramLogSize(prog))
        log = b" " * size
        check(nv.nvrtcGetProgramLog(prog, log))
        return log.rstrip(b"\0 ").decode(errors="replace")
    except Exception as exc:  # the log is a nicety; the compile error itself still raises
        return f"(no NVRTC log: {exc})"


@functools.cache
def compile_kernel(arch: str) -> bytes:
    """NVRTC-compile the kernel: 'sm_XY' gives a cubin, 'compute_XY' PTX. Needs no GPU."""
    nv = nvrtc_api()
    prog = check(nv.nvrtcCreateProgram(KERNEL_SOURCE.encode(), b"letterbox.cu", 0, [], []),
                 "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}".encode()]
        result = nv.nvrtcCompileProgram(prog, len(opts), opts)
        if int(result[0]) != 0:
            check(result, f"NVRTC compile of the letterbox kernel for {arch}\n"
                          f"{_program_log(nv, prog)}\n")
        if arch.startswith("sm_"):
            size = check(nv.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
            image = b" " * size
            check(nv.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN")
        else:
            size = check(nv.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
            image = b" " * size
            check(nv.nvrtcGetPTX(prog, image), "nvrtcGetPTX")
        return image
    finally:
        nv.nvrtcDestroyProgram(prog)


_loaded: dict[int, tuple[Any, Any]] = {}  # device -> (CUmodule, CUfunction), process lifetime
_load_lock = threading.Lock()


def kernel_function(device: int = 0) -> Any:
    """The kernel loaded on ``device``: compiled for its exact architecture, once."""
    with _load_lock:
        if device not in _loaded:
            use_device(device)
            major, minor = compute_capability(device)
            image = np.frombuffer(compile_kernel(f"sm_{major}{minor}"), dtype=np.uint8)
            drv = driver_api()
            module = check(drv.cuModuleLoadData(image.ctypes.data),
                           "loading the letterbox kernel (cuModuleLoadData)")
            function = check(drv.cuModuleGetFunction(module, KERNEL_NAME.encode()),
                             "cuModuleGetFunction")
            _loaded[device] = (module, function)
        return _loaded[device][1]


class _KernelArgs:
    """Launch parameters stored in place: a launch passes one address and packs nothing."""

    def __init__(self, spec: Sequence[tuple[str, type]]) -> None:
        self._values: dict[str, np.ndarray] = {
            name: np.zeros(1, dtype=dtype) for name, dtype in spec}
        self._pointers = np.array([v.ctypes.data for v in self._values.values()],
                                  dtype=np.uint64)

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[name][0] = value

    def __getitem__(self, name: str) -> Any:
        return self._values[name][0].item()

    @property
    def address(self) -> int:
        return int(self._pointers.ctypes.data)


class GpuLetterbox(Resource):
    """GPU twin of :class:`~edge_trt_ros.vision.letterbox.Letterbox`.

    ``gl(view)`` copies the frame to the device and writes the network input into
    ``out`` (the engine's input binding: a DeviceBuffer or raw device pointer) or into
    ``self.output``; it returns that pointer and the same LetterboxGeometry as the CPU path.
    All work is queued on ``stream`` (created if not given): run the engine on the same
    stream. When the frame lives in pinned memory the copy is asynchronous, so keep it
    unchanged until the stream has passed this call. Not thread-safe, like the CPU path.
    """

    _kind = "GPU letterbox"

    def __init__(self, input_hw: tuple[int, int], layout: str = "nchw", *,
                 stream: Stream | None = None, device: int = 0) -> None:
        if layout not in ("nchw", "nhwc"):
            raise ValueError(f"unknown input layout {layout!r}")
        h, w = input_hw
        self.input_hw = (int(h), int(w))
        self.layout = layout
        self.device = device
        self.tensor_shape = (1, 3, h, w) if layout == "nchw" else (1, h, w, 3)
        self.tensor_nbytes = 3 * h * w * 4
        self.grid, self.block = launch_config(self.input_hw)
        self._function = kernel_function(device)  # compiled once per process, not per frame
        self._rt = runtime_api()
        self._drv = driver_api()
        self._owned: list[Resource] = []
        self.stream = stream if stream is not None else self._own(Stream(device))
        self._cu_stream = self._drv.CUstream(self.stream.handle)
        self.output = self._own(DeviceBuffer(self.tensor_nbytes, device))
        self._taps = self._own(DeviceBuffer((h + w) * 16, device))  # resized dims <= input
        self._src: DeviceBuffer | None = None
        self._key: tuple[int, int, int] | None = None
        self._geometry: LetterboxGeometry | None = None
        self._taps_host = np.empty((0, 4), dtype=np.int32)
        self._args = _KernelArgs(_PARAMS)
        for name, value in (("dst_w", w), ("dst_h", h), ("nhwc", int(layout == "nhwc")),
                            ("scale", np.float32(1.0 / 255.0)),
                            ("pad", np.float32(PAD_VALUE / 255.0))):
            self._args[name] = value
        self._fin = weakref.finalize(self, _close_owned, self._owned, self.stream)
        self._fin.atexit = False  # never at interpreter shutdown (see runtime)

    def _own(self, resource: Any) -> Any:
        self._owned.append(resource)
        return resource

    @property
    def geometry(self) -> LetterboxGeometry | None:
        """Geometry of the last uploaded frame."""
        return self._geometry

    def upload(self, view: ImageView) -> LetterboxGeometry:
        """Queue the frame's host-to-device copy; refresh the sampling tables on a new size."""
        self._check_open()
        use_device(self.device)
        pixels = view.pixels
        if pixels.ndim != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected HxWxC uint8 pixels, got {pixels.shape} {pixels.dtype}")
        h, w, c = (int(s) for s in pixels.shape)
        row = w * c
        # Row padding (step > width*channels) is skipped by the 2D copy; other layouts
        # (negative or gapped pixel strides) are compacted on the host first.
        if not (pixels.strides[2] == 1 and pixels.strides[1] == c and pixels.strides[0] >= row):
            pixels = np.ascontiguousarray(pixels)
        if self._src is None or self._src.nbytes < row * h:
            self._grow_source(row * h)
        assert self._src is not None
        rt = self._rt
        check(rt.cudaMemcpy2DAsync(self._src.ptr, row, int(pixels.ctypes.data),
                                   int(pixels.strides[0]), row, h,
                                   rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream.raw),
              f"copy of a {w}x{h}x{c} frame to the GPU")
        if self._key != (h, w, c):
            self._set_geometry(h, w, c)
        r, g, b = view.rgb_channels
        self._args["r_ch"], self._args["g_ch"], self._args["b_ch"] = r, g, b
        assert self._geometry is not None
        return self._geometry

    def launch(self, out: DeviceBuffer | int | None = None) -> int:
        """Queue the kernel on the last uploaded frame; returns the device pointer written."""
        self._check_open()
        if self._geometry is None:
            raise RuntimeError("GpuLetterbox.launch() before any upload()")
        use_device(self.device)
        if out is None:
            ptr = self.output.ptr
        elif isinstance(out, DeviceBuffer):
            if out.nbytes < self.tensor_nbytes:
                raise ValueError(f"output buffer holds {out.nbytes} bytes, the network input "
                                 f"{self.tensor_shape} float32 needs {self.tensor_nbytes}")
            ptr = out.ptr
        else:
            ptr = int(out)
        self._args["dst"] = ptr
        (gx, gy, gz), (bx, by, bz) = self.grid, self.block
        check(self._drv.cuLaunchKernel(self._function, gx, gy, gz, bx, by, bz, 0,
                                       self._cu_stream, self._args.address, 0),
              "letterbox kernel launch")
        return ptr

    def __call__(self, view: ImageView, out: DeviceBuffer | int | None = None
                 ) -> tuple[int, LetterboxGeometry]:
        geometry = self.upload(view)
        return self.launch(out), geometry

    def download(self, ptr: DeviceBuffer | int | None = None) -> np.ndarray:
        """The network input as a host array (waits for the stream): for tests and debugging."""
        host = np.empty(self.tensor_shape, dtype=np.float32)
        copy_dtoh_async(host, self.output if ptr is None else ptr, self.stream)
        self.stream.synchronize()
        return host

    def _grow_source(self, nbytes: int) -> None:
        self.stream.synchronize()  # the previous frame's kernel may still read the old buffer
        if self._src is not None:
            self._owned.remove(self._src)
            self._src.close()
        self._src = self._own(DeviceBuffer(nbytes, self.device))
        self._args["src"] = self._src.ptr

    def _set_geometry(self, h: int, w: int, c: int) -> None:
        geometry = letterbox_geometry((h, w), self.input_hw)
        rh, rw = geometry.resized_hw
        taps = np.ascontiguousarray(np.concatenate([column_taps(w, rw, c), row_taps(h, rh)]))
        # Stream-ordered after the previous frame's kernel; from pageable memory CUDA has
        # staged ``taps`` by the time the call returns.
        check(self._rt.cudaMemcpyAsync(self._taps.ptr, int(taps.ctypes.data), taps.nbytes,
                                       self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                       self.stream.raw), "upload of the letterbox tables")
        self._taps_host = taps
        ox, oy = geometry.offset_xy
        for name, value in (("src_pitch", w * c), ("channels", c), ("xtaps", self._taps.ptr),
                            ("ytaps", self._taps.ptr + rw * 16), ("off_x", ox), ("off_y", oy),
                            ("rw", rw), ("rh", rh)):
            self._args[name] = value
        self._key = (h, w, c)
        self._geometry = geometry


def _close_owned(owned: list[Resource], stream: Stream) -> None:
    with contextlib.suppress(Exception):
        if not stream.closed:
            stream.synchronize()  # let queued kernels finish before their buffers go
    for resource in reversed(owned):
        resource.close()
    owned.clear()

