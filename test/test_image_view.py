"""Zero-copy views of raw camera buffers: every encoding, padded rows, bad frames."""

import numpy as np
import pytest

from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.vision.image import ENCODINGS, image_view

RNG = np.random.default_rng(0)


def _buffer(h: int, w: int, channels: int, pad: int) -> tuple[np.ndarray, bytes]:
    pixels = RNG.integers(0, 256, (h, w, channels), dtype=np.uint8)
    rows = np.zeros((h, w * channels + pad), np.uint8)
    rows[:, : w * channels] = pixels.reshape(h, -1)
    rows[:, w * channels:] = 0xAB  # padding must never leak into the pixels
    return pixels, rows.tobytes()


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 7])
def test_every_encoding_with_and_without_padding(encoding: str, pad: int) -> None:
    channels, rgb = ENCODINGS[encoding]
    pixels, data = _buffer(5, 9, channels, pad)
    view = image_view(data, encoding, 5, 9, 9 * channels + pad)
    assert view.pixels.shape == (5, 9, channels)
    np.testing.assert_array_equal(view.pixels, pixels)
    assert view.rgb_channels == rgb


def test_view_shares_memory_with_the_message_buffer() -> None:
    import array

    data = array.array("B", bytes(4 * 6 * 3 + 4 * 2))
    view = image_view(data, "rgb8", 4, 6, 6 * 3 + 2)
    data[6 * 3 + 2] = 200  # first pixel of row 1
    assert view.pixels[1, 0, 0] == 200


def test_bgr_reads_red_from_the_last_channel() -> None:
    data = bytes([10, 20, 30])  # B, G, R
    view = image_view(data, "bgr8", 1, 1, 3)
    r, g, b = (view.pixels[0, 0, c] for c in view.rgb_channels)
    assert (r, g, b) == (30, 20, 10)


@pytest.mark.parametrize(
    ("encoding", "h", "w", "step", "size", "reason"),
    [
        ("yuv422", 4, 4, 8, 32, "unsupported encoding"),
        ("rgb8", 0, 4, 12, 0, "empty image"),
        ("rgb8", 4, 0, 0, 0, "empty image"),
        ("rgb8", 4, 4, 12, 47, "needs 48"),
        ("rgb8", 4, 4, 10, 40, "step 10 < width"),
        ("mono8", 20000, 4, 4, 80000, "exceeds"),
    ],
)
def test_bad_frames_raise_a_clear_error(encoding, h, w, step, size, reason) -> None:
    with pytest.raises(ImageFormatError, match=reason):
        image_view(bytes(size), encoding, h, w, step)
