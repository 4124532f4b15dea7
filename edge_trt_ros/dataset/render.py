"""One seeded frame of the synthetic defect dataset: surface + defects + camera at some lux."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .defects import CLASS_NAMES, composite, make_stamp
from .lighting import expose, sample_lux
from .surfaces import add_holes, render_surface

MAX_DEFECTS = 4
_PLACEMENT_TRIES = 12


@dataclass(frozen=True)
class Sample:
    """A rendered frame and its exact labels (boxes are xyxy in pixels, edges exclusive)."""

    image: np.ndarray  # uint8 HxWx3 RGB
    boxes: np.ndarray  # float32 [N, 4]
    class_ids: np.ndarray  # int64 [N]
    lux: float
    seed: int
    material: str
    # Per-defect full-frame boolean masks, only when render_sample(..., with_masks=True).
    masks: tuple[np.ndarray, ...] | None = field(default=None, repr=False)


def _overlaps(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in taken)


def render_sample(
    seed: int,
    width: int = 640,
    height: int = 480,
    lux: float | None = None,
    *,
    with_masks: bool = False,
) -> Sample:
    """Render frame ``seed``; the same arguments always give the same bytes.

    ``lux`` None draws the illuminance log-uniformly over 10–100k lux from the seed. The
    scene (surface, defects) depends only on ``seed``, so one scene can be re-rendered at
    several illuminances.
    """
    root = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, 0xD3F3C7])
    scene_ss, camera_ss, lux_ss = root.spawn(3)
    rng = np.random.default_rng(scene_ss)
    scale = min(width, height) / 480.0
    lux_value = float(lux) if lux is not None else sample_lux(np.random.default_rng(lux_ss))

    img, material = render_surface(rng, height, width)
    taken = add_holes(rng, img, scale, int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])))

    n_defects = int(rng.choice(MAX_DEFECTS + 1, p=[0.06, 0.34, 0.3, 0.18, 0.12]))
    boxes: list[tuple[int, int, int, int]] = []
    class_ids: list[int] = []
    masks: list[np.ndarray] = []
    for _ in range(n_defects):
        cls = int(rng.integers(len(CLASS_NAMES)))
        for _try in range(_PLACEMENT_TRIES):
            cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
            y_lo, y_hi = max(cy - 8, 0), min(cy + 8, height)
            x_lo, x_hi = max(cx - 8, 0), min(cx + 8, width)
            local_mean = float(img[y_lo:y_hi, x_lo:x_hi].mean())
            stamp = make_stamp(rng, cls, scale, local_mean)
            sh, sw = stamp.alpha.shape
            if sw >= width or sh >= height:
                continue
            x0 = min(max(cx - sw // 2, 0), width - sw)
            y0 = min(max(cy - sh // 2, 0), height - sh)
            ys, xs = np.nonzero(stamp.mask)
            box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1,
                   y0 + int(ys.max()) + 1)
            if _overlaps(box, taken):
                continue
            composite(img, stamp, x0, y0)
            taken.append(box)
            boxes.append(box)
            class_ids.append(cls)
            if with_masks:
                full = np.zeros((height, width), dtype=bool)
                full[y0 : y0 + sh, x0 : x0 + sw] = stamp.mask
                masks.append(full)
            break

    image = expose(img, lux_value, np.random.default_rng(camera_ss), scale)
    return Sample(
        image=image,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        class_ids=np.asarray(class_ids, dtype=np.int64),
        lux=lux_value,
        seed=int(seed),
        material=material,
        masks=tuple(masks) if with_masks else None,
    )
