"""Defect stamps: each defect is drawn into a small patch, then composited into the surface.

A stamp is an ``effect`` patch plus a boolean ``mask`` of the pixels it changes; the
ground-truth box is the tight extent of that mask, so boxes are exact by construction
(before camera blur, which spreads edges by a few pixels like a real camera does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("scratch", "crack", "dent", "stain")

_SHIFT = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Stamp:
    """One defect ready to composite: ``kind`` decides how ``alpha`` is applied."""

    class_id: int
    alpha: np.ndarray  # float32 hxw; weight (scratch/crack/stain) or signed shading (dent)
    colour: np.ndarray | None  # float32 [3] target colour for 'blend' stamps

    @property
    def mask(self) -> np.ndarray:
        return self.alpha != 0


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _canvas_for(points: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift points so they sit in a tight canvas with ``margin`` px around them."""
    lo = points.min(axis=0) - margin
    hi = points.max(axis=0) + margin
    size = np.ceil(hi - lo).astype(int) + 1
    return points - lo, np.zeros((size[1], size[0]), dtype=np.uint8)


def scratch(rng: np.random.Generator, scale: float, local_mean: float) -> Stamp:
    """Long, thin, nearly straight line: tool slip on the surface; usually bright (bare metal)."""
    length = rng.uniform(45.0, 170.0) * scale
    theta = rng.uniform(0.0, math.pi)
    bend = rng.uniform(-0.12, 0.12) * length
    t = np.linspace(0.0, 1.0, 8)
    along = np.stack([np.cos(theta), np.sin(theta)])
    normal = np.stack([-np.sin(theta), np.cos(theta)])
    pts = (t[:, None] * length) * along + (4 * t * (1 - t) * bend)[:, None] * normal
    pts, canvas = _canvas_for(pts, 3.0)
    thickness = int(rng.integers(1, 3))
    cv2.polylines(canvas, [_fixed(pts)], False, 255, thickness, cv2.LINE_AA, _SHIFT)
    alpha = canvas.astype(np.float32) * np.float32(rng.uniform(0.75, 1.0) / 255.0)
    bright = local_mean < 0.45 or rng.random() < 0.6
    level = min(local_mean + rng.uniform(0.3, 0.5), 0.95) if bright else local_mean * 0.25
    return Stamp(0, alpha, np.full(3, level, dtype=np.float32))


def crack(rng: np.random.Generator, scale: float, local_mean: float) -> Stamp:
    """Jagged dark random walk with side branches: fatigue cracks in castings and welds."""
    n = int(rng.integers(12, 28))
    step = rng.uniform(3.0, 5.0) * scale
    heading = rng.uniform(0.0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.5, n))
    trunk = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * step, axis=0)
    trunk = np.vstack([np.zeros((1, 2)), trunk])
    paths = [trunk]
    for _ in range(int(rng.integers(0, 3))):
        start = trunk[int(rng.integers(2, n - 1))]
        m = int(rng.integers(4, max(5, n // 2)))
        hb = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.5, m))
        br = start + np.cumsum(np.stack([np.cos(hb), np.sin(hb)], axis=1) * step, axis=0)
        paths.append(np.vstack([start[None], br]))
    allpts = np.vstack(paths)
    shifted, canvas = _canvas_for(allpts, 3.0)
    offset = allpts[0] - shifted[0]
    for i, p in enumerate(paths):
        thickness = 2 if i == 0 and rng.random() < 0.6 else 1
        cv2.polylines(canvas, [_fixed(p - offset)], False, 255, thickness, cv2.LINE_AA, _SHIFT)
    alpha = canvas.astype(np.float32) * np.float32(rng.uniform(0.8, 0.95) / 255.0)
    level = local_mean * 0.08 if local_mean > 0.12 else min(local_mean + 0.25, 0.6)
    return Stamp(1, alpha, np.full(3, level, dtype=np.float32))


def dent(rng: np.random.Generator, scale: float, local_mean: float) -> Stamp:
    """Shallow elliptical depression: shading of a Gaussian bump's slope under oblique light."""
    sx, sy = rng.uniform(7.0, 20.0, size=2) * scale
    rot = rng.uniform(0.0, math.pi)
    light = rng.uniform(0.0, 2 * math.pi)
    half = int(math.ceil(2.6 * max(sx, sy))) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    c, s = math.cos(rot), math.sin(rot)
    u = (c * xx + s * yy) / sx
    v = (-s * xx + c * yy) / sy
    g = np.exp(-0.5 * (u * u + v * v))
    gx = -(c * u / sx - s * v / sy) * g  # d g / d x
    gy = -(s * u / sx + c * v / sy) * g
    slope = gx * math.cos(light) + gy * math.sin(light)
    slope /= float(np.abs(slope).max())
    strength = np.float32(rng.uniform(0.45, 0.7))
    # Soft-threshold: zero below 12% of the peak so the changed pixels have a clear extent.
    shade = np.sign(slope) * np.maximum(np.abs(slope) - 0.12, 0.0) / 0.88 * strength
    shade = shade - 0.15 * strength * np.maximum(g - 0.3, 0.0) / 0.7  # darker floor
    shade = np.where(np.abs(slope) > 0.12, shade, 0.0).astype(np.float32)
    ys, xs = np.nonzero(shade)
    shade = shade[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return Stamp(2, np.ascontiguousarray(shade), None)


_STAIN_COLOURS = np.array(
    [
        [0.06, 0.045, 0.03],  # oil
        [0.45, 0.18, 0.06],  # rust
        [0.85, 0.85, 0.80],  # dried coolant / salt
        [0.25, 0.35, 0.12],  # coolant film
    ],
    dtype=np.float32,
)


def stain(rng: np.random.Generator, scale: float, local_mean: float) -> Stamp:
    """Irregular soft-edged blob of foreign matter (oil, rust, residue)."""
    radius = rng.uniform(10.0, 28.0) * scale
    size = int(math.ceil(radius * 3.2)) | 1
    canvas = np.zeros((size, size), dtype=np.uint8)
    ctr = size / 2
    for _ in range(int(rng.integers(3, 7))):
        off = rng.normal(0.0, radius * 0.35, size=2)
        r = rng.uniform(0.35, 0.7) * radius
        p = (int((ctr + off[0]) * _ONE), int((ctr + off[1]) * _ONE))
        cv2.circle(canvas, p, int(r * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
    soft = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), radius / 4)
    alpha = np.clip((soft - 0.3) / 0.35, 0.0, 1.0)
    ys, xs = np.nonzero(alpha)
    alpha = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # Choose a colour that contrasts with the surface, as a visible stain would.
    order = rng.permutation(len(_STAIN_COLOURS))
    colour = _STAIN_COLOURS[order[0]]
    for i in order:
        if abs(float(_STAIN_COLOURS[i].mean()) - local_mean) > 0.18:
            colour = _STAIN_COLOURS[i]
            break
    opacity = np.float32(rng.uniform(0.6, 0.9))
    return Stamp(3, np.ascontiguousarray(alpha * opacity, dtype=np.float32), colour)


_MAKERS = (scratch, crack, dent, stain)


def make_stamp(rng: np.random.Generator, class_id: int, scale: float, local_mean: float) -> Stamp:
    return _MAKERS[class_id](rng, scale, local_mean)


def composite(img: np.ndarray, stamp: Stamp, x0: int, y0: int) -> None:
    """Apply ``stamp`` in place with its top-left corner at (x0, y0)."""
    h, w = stamp.alpha.shape
    roi = img[y0 : y0 + h, x0 : x0 + w]
    a = stamp.alpha[..., None]
    if stamp.colour is None:  # dent: multiplicative shading
        roi *= 1.0 + a
    else:
        roi += a * (stamp.colour - roi)
