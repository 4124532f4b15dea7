"""Fuzzing what an image message can carry (sensor_msgs/Image from any camera driver or a
hostile node): every encoding name, random sizes, short and long buffers, odd steps,
big-endian flags, 16-bit and float encodings. The property: the node's conversion either
gives a view inside the message's own buffer that the detector runs on, or raises
ImageFormatError (the frame is counted as rejected); nothing else, never a crash or hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_support import FUZZ, count, write_report
from hypothesis import given
from hypothesis import strategies as st
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from edge_trt_ros.detector import Detector
from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.ros.conversion import detections_msg, printable, view_of
from edge_trt_ros.vision.image import ENCODINGS

# sensor_msgs/image_encodings.hpp, plus what drivers are seen to send.
ROS_ENCODINGS = [
    "rgb8", "rgba8", "rgb16", "rgba16", "bgr8", "bgra8", "bgr16", "bgra16", "mono8",
    "mono16", "8UC1", "8UC3", "8UC4", "16UC1", "16SC1", "32SC1", "32FC1", "64FC1",
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg16", "yuv422", "yuv422_yuy2", "uyvy", "nv12",
    "nv21", "UYVY", "RGB8", "rgb8 ", "", "jpeg", "16UC1\n[FATAL] forged",
]
UINT32 = 2**32 - 1


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    write_report()


@pytest.fixture(scope="module")
def detector(tiny: Path) -> Detector:
    return Detector.from_model(tiny)


@st.composite
def image_messages(draw: st.DrawFn) -> Image:
    encoding = draw(st.one_of(st.sampled_from(ROS_ENCODINGS), st.text(max_size=20)))
    small = st.integers(0, 48)
    height = draw(st.one_of(small, st.sampled_from([1, 16385, 70000, UINT32])))
    width = draw(st.one_of(small, st.sampled_from([1, 16385, 70000, UINT32])))
    channels = ENCODINGS.get(encoding, (draw(st.sampled_from([1, 2, 3, 4, 8])), None))[0]
    row = min(width * channels, 1 << 20)
    step = draw(st.one_of(st.just(row), st.integers(0, row + 17),
                          st.sampled_from([0, 1, UINT32])))
    need = min(step * height, 1 << 16)
    size = draw(st.one_of(st.just(need), st.integers(0, need + 64), st.just(0)))
    data = draw(st.binary(min_size=size, max_size=size)) if size <= 4096 else bytes(size)
    msg = Image(height=height, width=width, encoding=encoding,
                is_bigendian=draw(st.sampled_from([0, 1])), step=min(step, UINT32))
    msg.data = data
    return msg


@FUZZ
@given(msg=image_messages())
def test_any_image_message_gives_a_view_or_a_clear_rejection(msg: Image,
                                                             detector: Detector) -> None:
    count("image messages")
    try:
        view = view_of(msg)
    except ImageFormatError as exc:
        text = str(exc)
        assert text and "\n" not in text and "\r" not in text  # log-safe
        return
    channels = ENCODINGS[msg.encoding][0]
    assert view.pixels.shape == (msg.height, msg.width, channels)
    assert view.pixels.dtype == np.uint8
    assert msg.step * msg.height <= len(msg.data)  # the view lies inside the buffer
    found = detector.detect(view)  # the pipeline runs on whatever the view holds
    assert len(found.boxes) == len(found.scores) == len(found.class_ids)
    out = detections_msg(found, msg.header, detector.class_names)
    assert all(np.isfinite([d.bbox.size_x, d.bbox.size_y]).all() for d in out.detections)


@FUZZ
@given(frame_id=st.one_of(st.text(max_size=300), st.lists(
    st.sampled_from("a\n\r\x1b\x00\u2028\u2029\u202e\u200f\x85[]: "), max_size=40).map("".join)))
def test_any_frame_id_is_copied_verbatim_and_logged_safely(frame_id: str,
                                                           detector: Detector) -> None:
    count("header strings")
    safe = printable(frame_id)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in safe)
    assert not any(c in safe for c in "\u2028\u2029\u202e\u200f")
    assert len(safe) <= 120 + len("...(+1000 chars)")
    found = detector.detect(view_of(_frame()))
    header = Header(frame_id=frame_id)
    assert detections_msg(found, header, detector.class_names).header.frame_id == frame_id


def _frame() -> Image:
    msg = Image(height=8, width=8, encoding="rgb8", step=24)
    msg.data = bytes(8 * 24)
    return msg
