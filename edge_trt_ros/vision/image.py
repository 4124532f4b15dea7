"""Zero-copy views of raw camera buffers (the layout of sensor_msgs/Image)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_trt_ros.errors import ImageFormatError

# encoding -> (channels, channel indices that give R, G, B)
ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}

# Refuse absurd frames before touching them: 16k x 16k is far beyond any robot camera.
MAX_SIDE = 16384



@dataclass(frozen=True)
class ImageView:
    """An HxWxC uint8 view into the caller's buffer plus how to read RGB from it."""

    pixels: np.ndarray
    rgb_channels: tuple[int, int, int]

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def image_view(data: object, encoding: str, height: int, width: int, step: int) -> ImageView:
    """View a raw row-major buffer as pixels without copying; ``step`` padding is skipped."""
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ImageFormatError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})"
        )
    channels, rgb = spec
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"empty image ({width}x{height})")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageFormatError(f"image {width}x{height} exceeds {MAX_SIDE} pixels per side")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageFormatError(f"step {step} < width*channels {row_bytes} for {encoding}")
    buffer = np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    if buffer.size < step * height:
        raise ImageFormatError(
            f"buffer holds {buffer.size} bytes, {encoding} {width}x{height} step {step} "
            f"needs {step * height}"
        )
    rows = buffer[: step * height].reshape(height, step)
    pixels = rows[:, :row_bytes].reshape(height, width, channels)
    return ImageView(pixels, rgb)


def rgb_view(image: np.ndarray) -> ImageView:
    """Wrap an HxWx3 RGB array (as produced by the dataset and most Python code)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageFormatError(f"expected HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
    return ImageView(image, (0, 1, 2))
