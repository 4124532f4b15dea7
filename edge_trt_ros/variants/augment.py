"""Deterministic camera-level augmentation for INT8 calibration frames.

The renderer already models illuminance (auto-exposure, gain, shot/read noise). These
transforms add what a deployed camera does on top of that, so the calibrated activation
ranges also cover it: auto-exposure that lags a lighting change (exposure/gain error),
a different ISP tone curve (gamma), extra sensor noise at high gain, and motion blur from
the moving robot. Each frame's transforms are drawn from ``(spec.seed, frame seed)``, so a
calibration set is a pure function of its parameters and can be cached by their hash.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

_DISPLAY_GAMMA = 2.2  # sRGB-like encoding assumed when changing exposure in linear light


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of the calibration augmentations (all deterministic given ``seed``)."""

    seed: int = 0
    p_original: float = 0.25  # share of frames left exactly as rendered
    p_each: float = 0.5  # chance that each transform applies to an augmented frame
    exposure_stops: float = 1.0  # exposure/gain error, uniform in +-stops
    gamma_range: tuple[float, float] = (0.75, 1.35)  # tone-curve exponent, log-uniform
    noise_sigma_max: float = 0.03  # extra Gaussian noise (0..1 units), uniform in 0..max
    blur_max_px: int = 9  # motion-blur streak length, uniform in 3..max, any direction

    def __post_init__(self) -> None:
        if not (0.0 <= self.p_original <= 1.0 and 0.0 <= self.p_each <= 1.0):
            raise ValueError("AugmentSpec probabilities must lie in 0..1")
        lo, hi = self.gamma_range
        if not 0.0 < lo <= hi:
            raise ValueError(f"gamma_range {self.gamma_range} must satisfy 0 < lo <= hi")
        if self.exposure_stops < 0 or self.noise_sigma_max < 0 or self.blur_max_px < 0:
            raise ValueError("AugmentSpec ranges must be non-negative")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gamma_range"] = list(self.gamma_range)
        return d


def _tone_lut(stops: float, gamma: float) -> np.ndarray:
    """uint8 -> uint8 table: exposure change in linear light, then a tone-curve exponent."""
    x = np.arange(256, dtype=np.float64) / 255.0
    linear = np.clip(x**_DISPLAY_GAMMA * 2.0**stops, 0.0, 1.0)
    y = (linear ** (1.0 / _DISPLAY_GAMMA)) ** gamma
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def _motion_kernel(length: int, angle_rad: float) -> np.ndarray:
    """Normalised line kernel: a straight streak of ``length`` pixels at ``angle_rad``."""
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    dx, dy = math.cos(angle_rad) * c, math.sin(angle_rad) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return k / k.sum()


def augment(image: np.ndarray, frame_seed: int, spec: AugmentSpec) -> np.ndarray:
    """Return an augmented copy of an HxWx3 uint8 frame (or the frame itself, unchanged).

    Order follows the camera: scene motion blurs the optical image, exposure/gain and the
    tone curve map it to code values, and sensor noise is added on top.
    """
    rng = np.random.default_rng([spec.seed & 0xFFFFFFFF, frame_seed & 0xFFFFFFFF, 0xA06])
    if rng.random() < spec.p_original:
        return image
    out = image
    apply = rng.random(4) < spec.p_each
    if not apply.any():  # an augmented frame always gets at least one transform
        apply[rng.integers(4)] = True
    if apply[0] and spec.blur_max_px >= 3:
        length = int(rng.integers(3, spec.blur_max_px + 1))
        kernel = _motion_kernel(length, float(rng.uniform(0.0, math.pi)))
        out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT)
    stops = float(rng.uniform(-spec.exposure_stops, spec.exposure_stops)) if apply[1] else 0.0
    lo, hi = spec.gamma_range
    gamma = float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if apply[2] else 1.0
    if stops != 0.0 or gamma != 1.0:
        out = cv2.LUT(np.ascontiguousarray(out), _tone_lut(stops, gamma))
    if apply[3] and spec.noise_sigma_max > 0:
        sigma = float(rng.uniform(0.0, spec.noise_sigma_max)) * 255.0
        noisy = out.astype(np.float32)
        noisy += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out if out is not image else image.copy()
