"""Letterbox preprocessing and the inverse box mapping."""

import numpy as np
import pytest

from edge_trt_ros.vision.image import image_view, rgb_view
from edge_trt_ros.vision.letterbox import PAD_VALUE, Letterbox, letterbox_geometry


def test_geometry_fits_and_centres() -> None:
    g = letterbox_geometry((480, 640), (320, 320))
    assert g.scale == pytest.approx(0.5)
    assert g.resized_hw == (240, 320)
    assert g.offset_xy == (0, 40)


def test_boxes_map_back_to_image_pixels_and_clip() -> None:
    g = letterbox_geometry((480, 640), (320, 320))
    boxes = np.array([[110, 135, 210, 185], [-5, 30, 330, 400]], np.float32)
    np.testing.assert_allclose(
        g.to_image(boxes), [[220, 190, 420, 290], [0, 0, 640, 480]], atol=1e-4
    )


def test_tensor_is_rgb_normalised_and_padded() -> None:
    image = np.zeros((4, 8, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 128, 0
    tensor, g = Letterbox((8, 8))(rgb_view(image))
    assert tensor.shape == (1, 3, 8, 8) and tensor.dtype == np.float32
    assert g.offset_xy == (0, 2)
    np.testing.assert_allclose(tensor[0, :, 2:6, :].mean(axis=(1, 2)), [1.0, 128 / 255, 0.0])
    np.testing.assert_allclose(tensor[0, :, :2, :], PAD_VALUE / 255)
    np.testing.assert_allclose(tensor[0, :, 6:, :], PAD_VALUE / 255)


def test_bgr_and_rgba_and_mono_give_the_same_tensor_as_rgb() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = Letterbox((32, 32))(rgb_view(rgb))[0].copy()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    bgra = np.concatenate([bgr, np.full((48, 64, 1), 7, np.uint8)], axis=2)
    for data, enc, ch in ((bgr, "bgr8", 3), (bgra, "bgra8", 4)):
        got = Letterbox((32, 32))(image_view(data.tobytes(), enc, 48, 64, 64 * ch))[0]
        np.testing.assert_array_equal(got, expected)
    mono = rgb[..., 1].copy()
    got = Letterbox((32, 32))(image_view(mono.tobytes(), "mono8", 48, 64, 64))[0]
    np.testing.assert_array_equal(got[0, 0], got[0, 2])
    np.testing.assert_array_equal(got[0, 1], expected[0, 1])


def test_nhwc_layout_matches_nchw() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    nchw = Letterbox((32, 32), "nchw")(rgb_view(rgb))[0]
    nhwc = Letterbox((32, 32), "nhwc")(rgb_view(rgb))[0]
    np.testing.assert_array_equal(nchw[0].transpose(1, 2, 0), nhwc[0])


def test_padding_is_rewritten_when_the_camera_geometry_changes() -> None:
    lb = Letterbox((16, 16))
    lb(rgb_view(np.full((16, 16, 3), 255, np.uint8)))  # fills the whole tensor
    tensor, g = lb(rgb_view(np.full((8, 16, 3), 255, np.uint8)))
    assert g.offset_xy == (0, 4)
    np.testing.assert_allclose(tensor[0, :, :4, :], PAD_VALUE / 255)
