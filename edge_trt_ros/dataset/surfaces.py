"""Procedural industrial surfaces in linear albedo (HxWx3 float32, 0..1).

Each material is a few cheap operations on coarse random fields upsampled with cv2.resize,
so a 640x480 surface costs a few milliseconds and needs no texture files.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .lighting import noise_window

MATERIALS: tuple[str, ...] = ("brushed_metal", "painted_metal", "plastic", "casting")

# Linear-albedo base colours typical of shop-floor parts.
_PAINTS = np.array(
    [
        [0.60, 0.45, 0.03],  # safety yellow
        [0.10, 0.25, 0.12],  # machine green
        [0.06, 0.14, 0.35],  # RAL blue
        [0.30, 0.31, 0.32],  # grey primer
        [0.55, 0.15, 0.03],  # orange
        [0.45, 0.45, 0.42],  # light grey
    ],
    dtype=np.float32,
)
_PLASTICS = np.array(
    [
        [0.05, 0.05, 0.05],
        [0.70, 0.70, 0.68],
        [0.25, 0.26, 0.28],
        [0.05, 0.12, 0.30],
        [0.50, 0.08, 0.05],
    ],
    dtype=np.float32,
)


def _coarse(rng: np.random.Generator, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Smooth zero-mean random field: a gh x gw grid of normals, cubic-upsampled to HxW."""
    grid = rng.standard_normal((max(gh, 2), max(gw, 2))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _tint(gray: np.ndarray, colour: np.ndarray) -> np.ndarray:
    gray = gray.astype(np.float32, copy=False)
    c = [float(v) for v in colour]
    return cv2.multiply(cv2.merge([gray, gray, gray]), (c[0], c[1], c[2], 0.0))  # type: ignore[call-overload]  # noqa: E501


def brushed_metal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(0.35, 0.65)
    colour = np.array([1.0, 1.0, 1.0 + rng.uniform(0.0, 0.08)], dtype=np.float32)
    if rng.random() < 0.5:  # noqa: SIM108 - grain along x: coarse in y only
        streaks = _coarse(rng, h, w, h // 2, 6)
    else:
        streaks = _coarse(rng, h, w, 6, w // 2)
    sheen = _coarse(rng, h, w, 3, 4)
    gray = base * (1.0 + 0.07 * streaks + 0.12 * sheen + 0.02 * noise_window(rng, h, w))
    return _tint(gray, colour)


def painted_metal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _PAINTS[rng.integers(len(_PAINTS))] * rng.uniform(0.8, 1.2)
    peel = _coarse(rng, h, w, h // 6, w // 6)
    gray = 1.0 + 0.04 * peel + 0.06 * _coarse(rng, h, w, 3, 4) + 0.01 * noise_window(rng, h, w)
    return _tint(gray, colour.astype(np.float32))


def plastic(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _PLASTICS[rng.integers(len(_PLASTICS))] * rng.uniform(0.85, 1.15)
    colour = np.maximum(colour, 0.04).astype(np.float32)
    mottle = _coarse(rng, h, w, h // 24, w // 24)
    gray = 1.0 + 0.05 * mottle + 0.04 * noise_window(rng, h, w)
    return _tint(gray, colour)


def casting(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(0.22, 0.42)
    colour = np.array([1.0, 0.97, 0.93], dtype=np.float32)
    grain = _coarse(rng, h, w, h // 3, w // 3)
    fine = noise_window(rng, h, w)
    gray = base * (1.0 + 0.08 * grain + 0.06 * fine + 0.1 * _coarse(rng, h, w, 3, 4))
    pores = fine > 2.6  # sparse small dark pits, part of the normal texture
    gray = np.where(pores, gray * 0.55, gray)
    return _tint(gray.astype(np.float32), colour)


_MAKERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "brushed_metal": brushed_metal,
    "painted_metal": painted_metal,
    "plastic": plastic,
    "casting": casting,
}


def render_surface(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
    """A random material surface, plus benign structure (holes, a fold) that is not a defect."""
    material = MATERIALS[int(rng.integers(len(MATERIALS)))]
    img = np.ascontiguousarray(_MAKERS[material](rng, h, w), dtype=np.float32)
    if rng.random() < 0.4:
        _add_fold(rng, img)
    return img, material


def _add_fold(rng: np.random.Generator, img: np.ndarray) -> None:
    """A straight bend/step across the part: one side shaded, a thin highlight on the edge."""
    h, w = img.shape[:2]
    horizontal = rng.random() < 0.5
    pos = int(rng.uniform(0.15, 0.85) * (h if horizontal else w))
    shade = np.float32(rng.uniform(0.6, 0.85))
    if horizontal:
        img[pos:] *= shade
        img[max(pos - 2, 0) : pos] = np.minimum(img[max(pos - 2, 0) : pos] * 1.4, 1.0)
    else:
        img[:, pos:] *= shade
        img[:, max(pos - 2, 0) : pos] = np.minimum(img[:, max(pos - 2, 0) : pos] * 1.4, 1.0)


def add_holes(
    rng: np.random.Generator, img: np.ndarray, scale: float, count: int
) -> list[tuple[int, int, int, int]]:
    """Drilled holes / rivets (round, dark, bright rim). Returns their boxes as keep-outs."""
    h, w = img.shape[:2]
    boxes = []
    for _ in range(count):
        r = int(rng.uniform(6, 16) * scale) + 2
        cx = int(rng.integers(r + 3, w - r - 3))
        cy = int(rng.integers(r + 3, h - r - 3))
        rivet = rng.random() < 0.5
        rim = (0.8, 0.8, 0.78)
        cv2.circle(img, (cx, cy), r + 2, rim, -1, cv2.LINE_AA)
        inner = (0.5, 0.5, 0.5) if rivet else (0.02, 0.02, 0.02)
        cv2.circle(img, (cx, cy), r, inner, -1, cv2.LINE_AA)
        boxes.append((cx - r - 3, cy - r - 3, cx + r + 4, cy + r + 4))
    return boxes
