"""Letterbox a camera frame into the network input and map boxes back.

The input tensor is allocated once and its padding written only when the camera geometry
changes, so a steady stream costs one resize and one normalising copy per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_trt_ros.vision.image import ImageView

PAD_VALUE = 114  # the grey Ultralytics pads with; trained models expect it


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where a source image lands inside the network input."""

    src_hw: tuple[int, int]
    scale: float
    resized_hw: tuple[int, int]
    offset_xy: tuple[int, int]

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from network-input pixels to source-image pixels (clipped)."""
        out = np.empty_like(boxes, dtype=np.float32)
        ox, oy = self.offset_xy
        out[:, 0::2] = (boxes[:, 0::2] - ox) / self.scale
        out[:, 1::2] = (boxes[:, 1::2] - oy) / self.scale
        h, w = self.src_hw
        np.clip(out[:, 0::2], 0.0, float(w), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(h), out=out[:, 1::2])
        return out


def letterbox_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> LetterboxGeometry:
    """Scale to fit, keep aspect ratio, centre."""
    (h, w), (dh, dw) = src_hw, dst_hw
    scale = min(dh / h, dw / w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    return LetterboxGeometry(src_hw, scale, (rh, rw), ((dw - rw) // 2, (dh - rh) // 2))


def run_opencv_on_callers() -> None:
    """Make OpenCV run every function on the thread that calls it, without its own pool.

    For callers that already give each core a frame (the runtime's worker pool, one
    worker per core): OpenCV's pool would split each small resize over the same cores
    again. Measured on 2 cores at 30 fps: its threads spent 0.7 ms of CPU per frame and no
    frame came out faster. Process-wide, as OpenCV's setting is.
    """
    cv2.setNumThreads(1)


class Letterbox:
    """Reusable preprocessing into a float32 [1,3,H,W] (or [1,H,W,3]) tensor in 0..1, RGB."""

    def __init__(self, input_hw: tuple[int, int], layout: str = "nchw",
                 out: np.ndarray | None = None) -> None:
        """``out``: where to write, e.g. one frame's slice ``batch[i : i + 1]`` of a batch."""
        if layout not in ("nchw", "nhwc"):
            raise ValueError(f"unknown input layout {layout!r}")
        self.input_hw = input_hw
        self.layout = layout
        h, w = input_hw
        shape = (1, 3, h, w) if layout == "nchw" else (1, h, w, 3)
        if out is not None and (out.shape != shape or out.dtype != np.float32):
            raise ValueError(f"letterbox output {out.shape} {out.dtype}: need {shape} float32")
        self.tensor = np.empty(shape, dtype=np.float32) if out is None else out
        self._geometry: LetterboxGeometry | None = None

    def __call__(self, view: ImageView) -> tuple[np.ndarray, LetterboxGeometry]:
        geometry = self._geometry
        if geometry is None or geometry.src_hw != (view.height, view.width):
            geometry = letterbox_geometry((view.height, view.width), self.input_hw)
            self.tensor.fill(PAD_VALUE / 255.0)
            self._geometry = geometry
        rh, rw = geometry.resized_hw
        pixels = view.pixels
        if (rh, rw) != (view.height, view.width):
            pixels = cv2.resize(pixels, (rw, rh), interpolation=cv2.INTER_LINEAR)
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
        ox, oy = geometry.offset_xy
        inv = np.float32(1.0 / 255.0)
        for dst_c, src_c in enumerate(view.rgb_channels):
            if self.layout == "nchw":
                dst = self.tensor[0, dst_c, oy : oy + rh, ox : ox + rw]
            else:
                dst = self.tensor[0, oy : oy + rh, ox : ox + rw, dst_c]
            np.multiply(pixels[:, :, src_c], inv, out=dst, casting="unsafe")
        return self.tensor, geometry
