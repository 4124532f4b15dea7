"""Several cameras without ROS: the fair mailbox, per-camera counters and lazy skips, the
compressed decode, the camera plan (names and collisions) and the debug drawing."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_models import constant_output_model, names_metadata, yolov8_output

from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.runtime.counters import REJECTED, FrameCounters
from edge_trt_ros.runtime.mailbox import Frame, Mailbox
from edge_trt_ros.runtime.painter import Painter
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.switcher import EngineSwitcher
from edge_trt_ros.runtime.workers import FrameResult, WorkerPool
from edge_trt_ros.variants.catalog import Catalog
from edge_trt_ros.vision.compressed import decode_compressed, encode_compressed
from edge_trt_ros.vision.decode import DecodeParams, Detections
from edge_trt_ros.vision.draw import draw_detections
from edge_trt_ros.vision.image import ImageView, image_view, rgb_view

NAMES = ["scratch", "crack"]


# --- the mailbox across cameras ------------------------------------------------------------

def test_each_camera_keeps_its_own_newest_frame() -> None:
    box = Mailbox()
    a1, b1, a2 = Frame("a1", 1, "a"), Frame("b1", 2, "b"), Frame("a2", 3, "a")
    assert box.put(a1) is None and box.put(b1) is None
    assert box.put(a2) is a1  # only the same camera's waiting frame is replaced
    assert {box.take(0).payload, box.take(0).payload} == {"a2", "b1"}  # type: ignore[union-attr]
    assert box.take(0.01) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("abcd"), min_size=1, max_size=60))
def test_busy_workers_serve_the_cameras_round_robin(arrivals: list[str]) -> None:
    """Whatever the arrival pattern (one camera flooding, others rare), a busy pool finds
    exactly one frame per camera waiting, the newest of each, and takes them in the ring's
    order starting after the camera served last."""
    box = Mailbox()
    replaced = sum(box.put(Frame(i, i, cam)) is not None for i, cam in enumerate(arrivals))
    newest = {cam: max(i for i, c in enumerate(arrivals) if c == cam) for cam in arrivals}
    assert replaced == len(arrivals) - len(newest)  # every other frame was replaced, counted
    taken = []
    while (f := box.take(0)) is not None:
        assert f.payload == newest[f.source]
        taken.append(f.source)
    assert taken == list(dict.fromkeys(arrivals))  # one each, in first-seen (ring) order


def test_a_flooding_camera_does_not_starve_a_slow_one() -> None:
    box = Mailbox()
    order: list[str] = []
    for round_ in range(20):  # a floods (5 frames per turn), b sends one per turn
        for k in range(5):
            box.put(Frame(f"a{round_}.{k}", 0, "a"))
        box.put(Frame(f"b{round_}", 0, "b"))
        order.append(box.take(0).source)  # type: ignore[union-attr]
    assert order.count("b") >= 9 and order.count("a") >= 9  # alternating, not 19 to 1


# --- the worker pool with cameras ----------------------------------------------------------

@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = yolov8_output([(48, 32, 20, 10)], [[0.9, 0.0]])
    return constant_output_model(tmp_path_factory.mktemp("known") / "k.onnx",
                                 {"output0": out}, (64, 96), names_metadata(NAMES, (64, 96)))


def _pool(model: Path, tmp: Path, emit: object, workers: int = 1, convert: object = None
          ) -> tuple[WorkerPool, EngineSwitcher, FrameCounters]:
    from edge_trt_ros.detector import Detector

    catalog = Catalog(model, tmp / "variants")
    fp32 = catalog.pick("fp32", "onnxruntime")
    switcher = EngineSwitcher(lambda spec, d: Detector.from_spec(spec, d), workers=workers,
                              decode=DecodeParams(0.25, 0.45, 100))
    switcher.start(EngineSpec("onnxruntime", str(fp32.path), intra_op_threads=1), fp32)

    def view(payload: object) -> ImageView:
        if isinstance(payload, bytes):
            return decode_compressed("jpeg", payload)
        assert isinstance(payload, np.ndarray)
        return rgb_view(payload)

    counters = FrameCounters(5.0)
    pool = WorkerPool(switcher, convert or view, emit, counters,  # type: ignore[arg-type]
                      FrameWindow(5.0), time.time_ns)
    return pool, switcher, counters


def _settle(pool: WorkerPool, counters: FrameCounters, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = counters.snapshot()
        if s.received == s.processed + s.dropped_total + pool.idle_skipped:
            return
        time.sleep(0.005)


def test_per_camera_counters_lazy_skips_and_corrupt_payloads(known: Path, tmp_path: Path
                                                             ) -> None:
    done: list[FrameResult] = []
    pool, switcher, counters = _pool(known, tmp_path, done.append)
    pool.stream("a")
    pool.stream("b")
    pool.set_wanted("b", False)  # nobody subscribes to camera b
    pool.start()
    frame = np.zeros((64, 96, 3), np.uint8)
    jpeg = encode_compressed(frame[:, :, ::-1])
    try:
        for i in range(5):
            pool.submit(Frame(frame, 10 + i, "a"))
            pool.submit(Frame(frame, 100 + i, "b"))
            _settle(pool, counters)
        pool.submit(Frame(jpeg[: len(jpeg) // 2], 20, "a"))  # a truncated jpeg
        _settle(pool, counters)
        pool.submit(Frame(b"\xff\xd8\xff not a jpeg \xff\xd9", 21, "a"))  # garbage
        _settle(pool, counters)
        pool.submit(Frame(jpeg, 22, "a"))  # a good compressed frame decodes and runs
        _settle(pool, counters)
        pool.set_wanted("b", True)  # a subscriber appeared: the next frame runs
        pool.submit(Frame(frame, 200, "b"))
        _settle(pool, counters)
    finally:
        pool.stop()
        switcher.close()
    a, b = pool.stream("a").snapshot(), pool.stream("b").snapshot()
    assert [r.frame.stamp_ns for r in done if r.frame.source == "a"] == [10, 11, 12, 13, 14, 22]
    assert [r.frame.stamp_ns for r in done if r.frame.source == "b"] == [200]
    assert a.counters.received == 8 and a.counters.processed == 6
    assert a.counters.dropped[REJECTED] == 2 and a.idle_skipped == 0
    assert "truncated" in a.counters.last_reason[REJECTED] or \
        "corrupt" in a.counters.last_reason[REJECTED]
    assert b.counters.received == 6 and b.counters.processed == 1 and b.idle_skipped == 5
    assert b.counters.dropped_total == 0  # idle skips are not drops
    total = counters.snapshot()
    assert total.received == 14 and total.processed == 7 and pool.idle_skipped == 5
    jpeg_result = next(r for r in done if r.frame.stamp_ns == 22)
    assert jpeg_result.view is not None and jpeg_result.convert_ms > 0
    np.testing.assert_allclose(jpeg_result.detections.boxes, done[0].detections.boxes,
                               atol=0.5)  # the same boxes as the raw frame


def test_a_camera_whose_frame_is_slow_does_not_hold_back_another(known: Path, tmp_path: Path
                                                                 ) -> None:
    """Results leave in arrival order per camera: camera b's frames are published while
    camera a's earlier frame is still being worked on."""
    gate = threading.Event()
    done: list[str] = []
    out_lock = threading.Lock()

    def emit(result: FrameResult) -> None:
        with out_lock:
            done.append(f"{result.frame.source}{result.frame.stamp_ns}")

    def convert(payload: object) -> ImageView:
        if isinstance(payload, str):
            gate.wait(5.0)
            return rgb_view(np.zeros((64, 96, 3), np.uint8))
        assert isinstance(payload, np.ndarray)
        return rgb_view(payload)

    pool, switcher, counters = _pool(known, tmp_path, emit, workers=2, convert=convert)
    pool.start()
    frame = np.zeros((64, 96, 3), np.uint8)
    try:
        pool.submit(Frame("slow", 1, "a"))
        time.sleep(0.1)
        for i in range(2, 6):
            pool.submit(Frame(frame, i, "b"))
            deadline = time.monotonic() + 5
            while f"b{i}" not in done and time.monotonic() < deadline:
                time.sleep(0.005)
        assert done == ["b2", "b3", "b4", "b5"]  # camera a's frame is still converting
        gate.set()
        _settle(pool, counters)
    finally:
        gate.set()
        pool.stop()
        switcher.close()
    assert done[-1] == "a1"


# --- compressed decode ---------------------------------------------------------------------

def test_jpeg_and_png_decode_to_the_frame_they_encode() -> None:
    rng = np.random.default_rng(3)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    png = decode_compressed("bgr8; png compressed bgr8", encode_compressed(bgr, "png"))
    assert png.pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(png.pixels, bgr)  # lossless
    assert png.rgb_channels == (2, 1, 0)  # BGR
    y, x = np.mgrid[0:48, 0:64]  # smooth ramps: jpeg keeps them, a channel swap would not
    ramps = np.dstack([x * 4, y * 5, np.full_like(x, 200)]).astype(np.uint8)
    jpg = decode_compressed("jpeg", encode_compressed(ramps, "jpeg", quality=95))
    assert np.abs(jpg.pixels.astype(int) - ramps).mean() < 3
    grey = decode_compressed("", encode_compressed(bgr[:, :, 0], "png"))  # format from magic
    assert grey.pixels.shape == (48, 64, 1)


@pytest.mark.parametrize(("fmt", "payload", "why"), [
    ("jpeg", b"", "empty"),
    ("jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9", "corrupt"),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 64, "corrupt"),
    ("tiff", b"II*\x00" + b"\x00" * 64, "not jpeg or png"),
])
def test_unusable_payloads_raise_image_format_errors(fmt: str, payload: bytes, why: str
                                                     ) -> None:
    with pytest.raises(ImageFormatError, match=why):
        decode_compressed(fmt, payload)


def test_a_truncated_jpeg_is_refused_not_half_decoded() -> None:
    data = encode_compressed(np.full((120, 160, 3), 128, np.uint8), "jpeg")
    assert decode_compressed("jpeg", data).pixels.shape == (120, 160, 3)
    with pytest.raises(ImageFormatError, match="truncated"):
        decode_compressed("jpeg", data[: len(data) * 2 // 3])


# --- camera plan -----------------------------------------------------------------------------

def _resolve(name: str) -> str:
    if name.startswith("~"):
        return "/detector" + name[1:]
    return name if name.startswith("/") else "/" + name


def test_outputs_go_under_each_cameras_namespace() -> None:
    from edge_trt_ros.ros.cameras import plan_cameras

    [default] = plan_cameras(["image"], ["raw"], _resolve)
    assert (default.input_topic, default.detections_topic, default.debug_topic) == (
        "image", "detections", "~/debug_image")  # today's single-camera names
    front, rear = plan_cameras(["/front/image_raw", "/rear/cam/image_raw"],
                               ["compressed", "raw"], _resolve)
    assert front.input_topic == "/front/image_raw/compressed"
    assert (front.detections_topic, front.debug_topic) == ("/front/detections",
                                                           "/front/debug_image")
    assert rear.detections_topic == "/rear/cam/detections" and rear.transport == "raw"
    assert [p.transport for p in plan_cameras(["/a/i", "/b/i"], ["compressed"], _resolve)] \
        == ["compressed", "compressed"]  # one transport for all


@pytest.mark.parametrize(("topics", "transports", "why"), [
    (["/front/image_raw", "/front/image_rect"], ["raw"], "/front/detections"),
    (["image", "/image_raw"], ["raw"], "/detections"),
    (["/a/image", "/a/image"], ["raw"], "/a/image"),
    (["/a/image", "/b/image"], ["raw", "raw", "raw"], "3 entries for 2"),
    (["/a/image"], ["theora"], "not one of raw, compressed"),
    ([], ["raw"], "at least one"),
    (["/a/image", ""], ["raw"], "no empty names"),
])
def test_camera_lists_that_would_collide_are_refused(topics: list[str], transports: list[str],
                                                     why: str) -> None:
    from edge_trt_ros.ros.cameras import plan_cameras

    with pytest.raises(ValueError, match=why):
        plan_cameras(topics, transports, _resolve)


# --- the debug image -----------------------------------------------------------------------

def test_the_debug_image_draws_boxes_on_a_copy() -> None:
    raw = np.full((60, 80, 3), 40, np.uint8)  # rgb8 bytes
    view = image_view(raw.tobytes(), "rgb8", 60, 80, 240)
    found = Detections(np.array([[10, 10, 50, 40]], np.float32), np.array([0.9], np.float32),
                       np.array([1]))
    out = draw_detections(view, found, NAMES, ["fp32 max", "15.0 fps"])
    assert out.shape == (60, 80, 3) and out.flags.c_contiguous
    assert (raw == 40).all()  # the camera's buffer is untouched
    assert not np.array_equal(out[10, 10:50], np.full((40, 3), 40))  # the box edge is drawn
    assert (out[55, 70] == 40).all()  # far from box and text: the frame itself
    mono = draw_detections(image_view(raw[:, :, 0].tobytes(), "mono8", 60, 80, 80),
                           Detections.empty(), NAMES)
    assert mono.shape == (60, 80, 3)


def test_the_painter_draws_the_newest_item_per_camera_off_the_caller() -> None:
    gate = threading.Event()
    drawn: list[tuple[str, int]] = []

    def render(camera: str, item: int) -> None:
        gate.wait(5.0)
        drawn.append((camera, item))

    painter: Painter[int] = Painter(render)
    painter.start()
    painter.offer("a", 1)
    time.sleep(0.1)  # the painter is busy with a1
    t0 = time.perf_counter()
    for i in range(2, 6):
        painter.offer("a", i)
    painter.offer("b", 1)
    assert time.perf_counter() - t0 < 0.05  # offering never waits for the drawing
    gate.set()
    deadline = time.monotonic() + 5
    while len(drawn) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    painter.stop()
    assert sorted(drawn) == [("a", 1), ("a", 5), ("b", 1)]
    assert painter.drawn == {"a": 2, "b": 1} and painter.skipped["a"] == 3


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_a_header_declaring_a_huge_image_is_refused_before_decoding(kind: str) -> None:
    data = bytearray(encode_compressed(np.zeros((48, 64, 3), np.uint8), kind))
    if kind == "png":
        data[16:24] = struct.pack(">II", 30_000, 30_000)  # IHDR width, height
    else:
        sof = next(i for i in range(len(data) - 1)
                   if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5:sof + 9] = struct.pack(">HH", 30_000, 30_000)  # height, width
    with pytest.raises(ImageFormatError, match="declares 30000x30000.*not decoded"):
        decode_compressed(kind, bytes(data))


def test_a_closed_mailbox_takes_no_frame() -> None:
    box = Mailbox()
    box.close()
    frame = Frame("late", 0, "cam")
    assert box.put(frame) is frame  # handed back, never kept to be served after a reopen
    box.reopen()
    assert box.take(timeout=0.05) is None
