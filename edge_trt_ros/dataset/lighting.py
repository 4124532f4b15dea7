"""Illuminance → camera image: auto-exposure, gain, sensor noise, white balance, gamma, blur.

The scene is rendered in linear albedo units; this module turns it into the 8-bit RGB a
factory camera would deliver at a given illuminance. The model is a simple physical one so
that darkness shows up the way it does on a real AGV camera: the exposure time hits its
limit, the camera raises analogue gain, and the image gets *noisier* (shot + read noise),
not black.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

LUX_MIN = 10.0
LUX_MAX = 100_000.0

# Reporting bins, half-open [lo, hi) in lux. One decade each: the factory's 10–100k lux
# swing is logarithmic, and the camera's behaviour changes by regime, not by absolute lux:
#   dark   10–100     unlit aisles, night shift: exposure capped, gain maxed, noisy
#   dim    100–1k     ordinary factory floor lighting: exposure near its cap
#   bright 1k–10k     task lighting, skylights, overcast daylight at doors
#   sunlit 10k–100k   loading docks in direct sun: auto-exposure over-shoots, clipping
# The last bound is 100_001 so that LUX_MAX itself falls inside the last bin.
LUX_BINS: tuple[tuple[float, float, str], ...] = (
    (10.0, 100.0, "dark"),
    (100.0, 1_000.0, "dim"),
    (1_000.0, 10_000.0, "bright"),
    (10_000.0, 100_001.0, "sunlit"),
)

# Sensor model constants (electrons). A well-exposed frame collects _E_TARGET e- for a
# white surface; the longest exposure collects _E_PER_LUX e- per lux; gain is capped.
_E_TARGET = 4000.0
_E_PER_LUX = 20.0
_GAIN_MAX = 10.0
_READ_NOISE_E = 4.0
_ADC_LEVELS = 4096  # 12-bit raw before gamma


def lux_bin(lux: float) -> str:
    """Name of the LUX_BINS bin that contains ``lux`` (clamped to the first/last bin)."""
    for lo, hi, name in LUX_BINS:
        if lo <= lux < hi:
            return name
    return LUX_BINS[0][2] if lux < LUX_BINS[0][0] else LUX_BINS[-1][2]


def sample_lux(rng: np.random.Generator, lo: float = LUX_MIN, hi: float = LUX_MAX) -> float:
    """Log-uniform illuminance in [lo, hi): equal weight per decade, like the reporting bins."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@lru_cache(maxsize=8)
def _noise_bank(height: int, width: int, channels: int) -> np.ndarray:
    """Fixed standard-normal field twice the frame size; per-frame noise is a random window.

    Drawing ~1M normals per frame costs more than the whole rest of the render; slicing a
    cached, fixed-seed bank at seeded offsets is deterministic and nearly free.
    """
    rng = np.random.default_rng([0x5EED, channels])
    shape = (2 * height, 2 * width) + ((channels,) if channels > 1 else ())
    bank = rng.standard_normal(shape, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def noise_window(
    rng: np.random.Generator, height: int, width: int, channels: int = 1
) -> np.ndarray:
    """A pseudo-random HxW (xC) standard-normal read-only view."""
    bank = _noise_bank(height, width, channels)
    oy = int(rng.integers(0, height))
    ox = int(rng.integers(0, width))
    win = bank[oy : oy + height, ox : ox + width]
    flip = int(rng.integers(0, 4))
    if flip & 1:
        win = win[::-1]
    if flip & 2:
        win = win[:, ::-1]
    return win


@lru_cache(maxsize=8)
def _vignette(height: int, width: int) -> np.ndarray:
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (height / 2)
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (width / 2)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    return (1.0 - 0.25 * r2).astype(np.float32)


def illumination_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth spatial light fall-off (lamp position, vignetting) as an HxW multiplier."""
    coarse = rng.uniform(0.8, 1.2, size=(3, 4)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return field * _vignette(height, width)


def white_balance(rng: np.random.Generator, lux: float) -> np.ndarray:
    """Residual colour cast (RGB gains) after the camera's auto white balance.

    Dim scenes are lit by warm lamps and AWB leaves some warmth; daylight is slightly cool.
    """
    warmth = 0.08 * (1.0 - math.log10(lux) / 3.0)  # +0.053 at 10 lux, 0 at 1k, -0.053 at 100k
    dr, db = rng.normal(0.0, 0.06, size=2)
    return np.array([1.0 + warmth + dr, 1.0, 1.0 - warmth + db], dtype=np.float32)


def motion_blur_kernel(rng: np.random.Generator, scale: float) -> np.ndarray | None:
    """Line kernel for AGV vibration blur, or None for a sharp frame (about half the time)."""
    if rng.random() < 0.5:
        return None
    length = float(rng.uniform(2.0, 9.0) * scale)
    angle = float(rng.uniform(0.0, math.pi))
    size = int(math.ceil(length)) | 1
    size = max(size, 3)
    k = np.zeros((size, size), dtype=np.float32)
    c = (size - 1) / 2
    dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
    p0 = (round((c - dx) * 16), round((c - dy) * 16))
    p1 = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(k, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
    total = float(k.sum())
    return k / total if total > 0 else None


def expose(
    scene: np.ndarray, lux: float, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """Linear scene albedo (HxWx3 float32, 0..1) at ``lux`` → gamma-encoded uint8 RGB.

    Auto-exposure aims at a lux-dependent target (it only partly compensates: dark scenes
    stay darker, very bright ones over-shoot); when the exposure time is capped the camera
    raises gain up to _GAIN_MAX, which amplifies shot and read noise.
    """
    h, w = scene.shape[:2]
    ae_target = _E_TARGET * (lux / 1000.0) ** 0.06 * math.exp(rng.normal(0.0, 0.1))
    electrons_white = min(ae_target, lux * _E_PER_LUX)
    gain = min(ae_target / electrons_white, _GAIN_MAX)

    # cv2 per-channel ops: numpy broadcasting over a trailing axis of 3 is several x slower.
    field = illumination_field(rng, h, w)
    wb = white_balance(rng, lux) * np.float32(electrons_white)
    electrons = cv2.multiply(scene, cv2.merge([field, field, field]))
    electrons = cv2.multiply(electrons, (float(wb[0]), float(wb[1]), float(wb[2]), 0.0))  # type: ignore[call-overload]  # noqa: E501
    kernel = motion_blur_kernel(rng, scale)
    if kernel is not None:
        electrons = cv2.filter2D(electrons, -1, kernel, borderType=cv2.BORDER_REFLECT)
    np.minimum(electrons, np.float32(_E_TARGET * 2.5), out=electrons)  # full well
    # (cv2 scalar arguments fill only channel 0 for min/max, so plain numpy here.)
    std = cv2.sqrt(electrons + np.float32(_READ_NOISE_E**2))
    noisy = cv2.add(electrons, cv2.multiply(std, noise_window(rng, h, w, 3)))

    to_adc = gain / _E_TARGET * (_ADC_LEVELS - 1)
    raw = np.clip(noisy * np.float32(to_adc), 0, _ADC_LEVELS - 1).astype(np.uint16)
    return np.take(_gamma_lut(round(float(rng.uniform(1.8, 2.4)), 2)), raw)


@lru_cache(maxsize=64)
def _gamma_lut(gamma: float) -> np.ndarray:
    x = np.arange(_ADC_LEVELS, dtype=np.float64) / (_ADC_LEVELS - 1)
    return np.round(255.0 * x ** (1.0 / gamma)).astype(np.uint8)
