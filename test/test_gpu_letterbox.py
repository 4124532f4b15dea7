"""GPU letterbox. Everywhere: the sampling tables and fixed-point arithmetic the kernel uses
reproduce cv2.resize, and the launch covers the tensor. With NVRTC: the kernel compiles and
its parameters match the launch code. On a CUDA device: the kernel's output equals the CPU
Letterbox for many encodings, sizes and row paddings (skipped otherwise)."""

from __future__ import annotations

import re
import threading

import cv2
import numpy as np
import pytest

from edge_trt_ros.errors import CudaError
from edge_trt_ros.gpu.letterbox import (
    _PARAMS,
    COEF_SCALE,
    KERNEL_NAME,
    GpuLetterbox,
    column_taps,
    compile_kernel,
    launch_config,
    row_taps,
)
from edge_trt_ros.gpu.runtime import (
    DeviceBuffer,
    PinnedBuffer,
    Stream,
    check,
    cuda_available,
    cuda_unavailable_reason,
    nvrtc_api,
    runtime_api,
)
from edge_trt_ros.vision.image import ImageView, image_view, rgb_view
from edge_trt_ros.vision.letterbox import Letterbox

INPUT_HW = (384, 512)  # the shipped model's input (H, W)
TOLERANCE = 1.0 / 255.0 + 1e-7  # one grey level: the most the paths may ever differ


def fixed_point_resize(img: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """numpy mirror of the kernel's arithmetic (same tables, same integer steps)."""
    h, w, c = img.shape
    dh, dw = dst_hw
    xt, yt = column_taps(w, dw, c), row_taps(h, dh)
    flat = img.reshape(h, w * c).astype(np.int64)
    out = np.empty((dh, dw, c), dtype=np.uint8)
    for ch in range(c):
        horiz = flat[:, xt[:, 0] + ch] * xt[:, 2] + flat[:, xt[:, 1] + ch] * xt[:, 3]
        h0, h1 = horiz[yt[:, 0]], horiz[yt[:, 1]]
        v = (((yt[:, 2:3] * (h0 >> 4)) >> 16) + ((yt[:, 3:4] * (h1 >> 4)) >> 16) + 2) >> 2
        out[:, :, ch] = np.clip(v, 0, 255)
    return out


# (src h, w, channels, dst h, w): non-integer down-scales (the 1080p case), exact 2x (OpenCV
# switches to INTER_AREA there), up-scales, identity, tiny and extreme aspect ratios.
RESIZES = [
    (1080, 1920, 3, 288, 512), (480, 640, 1, 384, 512), (767, 1023, 3, 384, 512),
    (768, 1024, 3, 384, 512), (240, 320, 3, 384, 512), (517, 333, 4, 384, 247),
    (384, 512, 3, 384, 512), (5, 7, 3, 366, 512), (100, 2000, 3, 26, 512),
]


@pytest.mark.parametrize("h, w, c, dh, dw", RESIZES)
def test_kernel_arithmetic_reproduces_cv2_resize(h, w, c, dh, dw):
    img = np.random.default_rng(h * w + c).integers(0, 256, (h, w, c), dtype=np.uint8)
    ref = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(dh, dw, c)
    diff = np.abs(fixed_point_resize(img, (dh, dw)).astype(int) - ref.astype(int))
    # Bit-exact with the OpenCV builds tried; allow a stray grey level for other builds.
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3, f"{(diff > 0).sum()} of {diff.size} values differ"


@pytest.mark.parametrize("src, dst", [(1920, 512), (1080, 288), (7, 512), (512, 512), (3, 1)])
def test_taps_stay_inside_the_source_and_weights_sum_to_one(src, dst):
    for taps in (column_taps(src, dst, 1), row_taps(src, dst)):
        assert taps.shape == (dst, 4) and taps.dtype == np.int32
        assert taps[:, :2].min() >= 0 and taps[:, :2].max() <= src - 1
        assert (taps[:, 2] + taps[:, 3] == COEF_SCALE).all()
        assert (taps[:, 1] - taps[:, 0] <= 1).all()


def test_column_taps_are_byte_offsets_and_identity_is_exact():
    rgb, mono = column_taps(640, 640, 3), column_taps(640, 640, 1)
    assert np.array_equal(rgb[:, 0], mono[:, 0] * 3)
    assert np.array_equal(mono[:, 0], np.arange(640)) and (mono[:, 2] == COEF_SCALE).all()


def test_rows_keep_their_weights_at_the_border_but_columns_do_not():
    # Up-scaling: the first output centre falls before source pixel 0. OpenCV zeroes the
    # fraction for columns and only clamps the rows; the tables must do the same.
    cols, rows = column_taps(4, 16, 1), row_taps(4, 16)
    assert tuple(cols[0]) == (0, 1, COEF_SCALE, 0)
    assert rows[0, 0] == rows[0, 1] == 0 and rows[0, 3] > 0


@pytest.mark.parametrize("hw", [(384, 512), (640, 640), (1, 1), (7, 33)])
def test_launch_covers_every_pixel_once(hw):
    (gx, gy, gz), (bx, by, bz) = launch_config(hw)
    h, w = hw
    assert gz == bz == 1 and bx * by <= 1024
    assert gx * bx >= w > (gx - 1) * bx and gy * by >= h > (gy - 1) * by


def test_launch_refuses_an_empty_input():
    with pytest.raises(ValueError, match="empty"):
        launch_config((0, 512))


def _nvrtc_archs() -> list[int]:
    try:
        return list(check(nvrtc_api().nvrtcGetSupportedArchs()))
    except Exception:  # no cuda-python or no libnvrtc: the compile test skips
        return []


@pytest.mark.skipif(not _nvrtc_archs(), reason="NVRTC (cuda-python + libnvrtc) not available")
def test_kernel_compiles_and_its_parameters_match_the_launch_code():
    archs = _nvrtc_archs()
    for arch in (87, 90):  # Jetson Orin, H100
        if arch in archs:
            assert compile_kernel(f"sm_{arch}")[:4] == b"\x7fELF"
    ptx = compile_kernel(f"compute_{max(archs)}").decode()
    params = re.findall(rf"\.param \.(\w+)[ .\w]* {KERNEL_NAME}_param_(\d+)", ptx)
    assert [int(i) for _, i in params] == list(range(len(_PARAMS)))
    expected = {np.uint64: "u64", np.int32: "u32", np.float32: "f32"}
    assert [t for t, _ in params] == [expected[dtype] for _, dtype in _PARAMS]


# --- on a CUDA device ----------------------------------------------------------------------

gpu = pytest.mark.skipif(not cuda_available(),
                         reason=f"no CUDA device: {cuda_unavailable_reason()}")

# (id, encoding, height, width, row padding bytes)
FRAMES = [
    ("1080p-rgb8", "rgb8", 1080, 1920, 0),
    ("1080p-bgr8", "bgr8", 1080, 1920, 0),
    ("720p-rgba8", "rgba8", 720, 1280, 0),
    ("odd-bgra8", "bgra8", 481, 641, 0),
    ("vga-mono8", "mono8", 480, 640, 0),
    ("odd-rgb8", "rgb8", 767, 1023, 0),
    ("tall-bgr8", "bgr8", 517, 333, 0),
    ("tiny-upscale-rgb8", "rgb8", 5, 7, 0),
    ("model-size-rgb8", "rgb8", 384, 512, 0),
    ("exact-half-rgb8", "rgb8", 768, 1024, 0),
    ("panorama-rgb8", "rgb8", 100, 2000, 0),
    ("padded-rows-bgr8", "bgr8", 1080, 1920, 64),
    ("padded-rows-mono8", "mono8", 479, 641, 3),
]
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def make_view(encoding: str, h: int, w: int, pad: int, seed: int = 0) -> ImageView:
    """A noisy frame as a raw sensor_msgs/Image buffer; the row padding is noise too."""
    step = w * CHANNELS[encoding] + pad
    data = np.random.default_rng(seed + h * w).integers(0, 256, step * h, dtype=np.uint8)
    return image_view(data.tobytes(), encoding, h, w, step)


def poison(gl: GpuLetterbox, ptr: int | None = None) -> None:
    """Fill the output with NaN bytes, so an element the kernel skips cannot pass."""
    rt = runtime_api()
    target = gl.output.ptr if ptr is None else ptr
    check(rt.cudaMemsetAsync(target, 0xFF, gl.tensor_nbytes, gl.stream.raw))


def compare(gpu_tensor: np.ndarray, cpu_tensor: np.ndarray) -> tuple[float, float]:
    """(max abs diff, fraction of identical values); NaN anywhere fails the max."""
    assert gpu_tensor.shape == cpu_tensor.shape
    diff = np.abs(gpu_tensor.astype(np.float64) - cpu_tensor)
    return float(np.max(diff)), float(np.mean(gpu_tensor == cpu_tensor))


@pytest.fixture(scope="module")
def shared_gl():
    # One instance for all frames, so every case also exercises a geometry change.
    with GpuLetterbox(INPUT_HW) as gl:
        yield gl


@gpu
@pytest.mark.parametrize("case, encoding, h, w, pad", FRAMES, ids=[f[0] for f in FRAMES])
def test_gpu_matches_cpu_letterbox(shared_gl, case, encoding, h, w, pad):
    view = make_view(encoding, h, w, pad)
    cpu_tensor, cpu_geometry = Letterbox(INPUT_HW)(view)
    poison(shared_gl)
    ptr, geometry = shared_gl(view)
    assert ptr == shared_gl.output.ptr
    assert geometry == cpu_geometry
    max_diff, identical = compare(shared_gl.download(), cpu_tensor)
    print(f"{case}: max abs diff {max_diff:.3g}, identical values {identical:.6f}")  # -rP
    assert max_diff <= TOLERANCE
    assert identical >= 0.999


@gpu
def test_nhwc_layout_matches_cpu():
    view = make_view("bgr8", 720, 1280, 0)
    cpu_tensor, _ = Letterbox(INPUT_HW, "nhwc")(view)
    with GpuLetterbox(INPUT_HW, "nhwc") as gl:
        poison(gl)
        gl(view)
        max_diff, identical = compare(gl.download(), cpu_tensor)
    print(f"nhwc-bgr8: max abs diff {max_diff:.3g}, identical values {identical:.6f}")
    assert max_diff <= TOLERANCE and identical >= 0.999


@gpu
def test_writes_into_an_external_binding_on_a_shared_stream():
    view = make_view("rgb8", 1080, 1920, 0, seed=5)
    cpu_tensor, _ = Letterbox(INPUT_HW)(view)
    with Stream() as stream, GpuLetterbox(INPUT_HW, stream=stream) as gl, \
            DeviceBuffer(gl.tensor_nbytes) as binding:
        poison(gl, binding.ptr)
        ptr, _ = gl(view, out=binding)
        assert ptr == binding.ptr
        assert compare(gl.download(binding), cpu_tensor)[0] <= TOLERANCE
        assert compare(gl.download(binding.ptr), cpu_tensor)[0] <= TOLERANCE
        with DeviceBuffer(gl.tensor_nbytes - 4) as small, \
                pytest.raises(ValueError, match="needs"):
            gl(view, out=small)
    assert gl.closed


@gpu
def test_frames_queued_back_to_back_keep_their_own_geometry():
    # No synchronize between frames: the next frame's copy and tables must not overtake
    # the previous kernel (a smaller frame, then a larger one that grows the source buffer).
    views = [make_view("mono8", 480, 640, 0, seed=11), make_view("bgr8", 1080, 1920, 8, seed=12),
             make_view("rgb8", 384, 512, 0, seed=13)]
    expected = [Letterbox(INPUT_HW)(v)[0].copy() for v in views]
    with GpuLetterbox(INPUT_HW) as gl:
        outs = [DeviceBuffer(gl.tensor_nbytes) for _ in views]
        try:
            for view, out in zip(views, outs, strict=True):
                gl(view, out=out)
            for out, cpu_tensor in zip(outs, expected, strict=True):
                assert compare(gl.download(out), cpu_tensor)[0] <= TOLERANCE
        finally:
            for out in outs:
                out.close()


@gpu
def test_external_stream_outlives_the_letterbox():
    with Stream() as stream:
        gl = GpuLetterbox(INPUT_HW, stream=stream)
        gl.close()
        assert not stream.closed
        stream.synchronize()


@gpu
def test_frame_in_pinned_memory():
    with PinnedBuffer((1080, 1920, 3)) as frame, GpuLetterbox(INPUT_HW) as gl:
        frame.array[:] = np.random.default_rng(7).integers(0, 256, frame.shape, np.uint8)
        view = rgb_view(frame.array)
        cpu_tensor, _ = Letterbox(INPUT_HW)(view)
        poison(gl)
        gl(view)
        assert compare(gl.download(), cpu_tensor)[0] <= TOLERANCE


@gpu
def test_non_contiguous_pixels_are_compacted():
    base = make_view("rgb8", 600, 800, 0, seed=3)
    flipped = ImageView(base.pixels[:, ::-1], base.rgb_channels)
    cpu_tensor, _ = Letterbox(INPUT_HW)(ImageView(np.ascontiguousarray(flipped.pixels),
                                                  base.rgb_channels))
    with GpuLetterbox(INPUT_HW) as gl:
        poison(gl)
        gl(flipped)
        assert compare(gl.download(), cpu_tensor)[0] <= TOLERANCE


@gpu
def test_runs_from_another_thread():
    view = make_view("bgr8", 1080, 1920, 0, seed=9)
    cpu_tensor, _ = Letterbox(INPUT_HW)(view)
    out: list[np.ndarray] = []
    errors: list[BaseException] = []
    with GpuLetterbox(INPUT_HW) as gl:
        def worker() -> None:
            try:
                gl(view)
                out.append(gl.download())
            except BaseException as exc:  # re-raised in the test thread
                errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert not errors, errors
    assert compare(out[0], cpu_tensor)[0] <= TOLERANCE


@gpu
def test_lifecycle_errors_are_clear():
    gl = GpuLetterbox(INPUT_HW)
    with pytest.raises(RuntimeError, match="before any upload"):
        gl.launch()
    gl.close()
    gl.close()
    assert gl.closed and gl.output.closed
    with pytest.raises(CudaError, match="after close"):
        gl(make_view("rgb8", 10, 10, 0))
