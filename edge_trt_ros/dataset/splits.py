"""Fixed, disjoint seed ranges per split, and lux-stratified calib/test splits.

A split is just a range of seeds, so every consumer (trainer, evaluator, INT8 calibrator,
camera node) regenerates identical frames without shipping any data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .lighting import LUX_BINS
from .render import Sample, render_sample


@dataclass(frozen=True)
class Split:
    name: str
    first_seed: int
    capacity: int  # seeds reserved; ranges never overlap
    default_count: int
    stratified: bool  # equal counts per LUX_BINS bin (round-robin over bins)


SPLITS: dict[str, Split] = {
    s.name: s
    for s in (
        Split("train", 0, 10_000_000, 24_000, False),
        Split("val", 10_000_000, 1_000_000, 400, False),
        Split("calib", 20_000_000, 1_000_000, 512, True),
        Split("test", 30_000_000, 1_000_000, 800, True),
    )
}


def split_seeds(name: str, count: int | None = None) -> list[int]:
    """Seeds of the first ``count`` frames of split ``name`` (default: its default size)."""
    split = SPLITS[name]
    n = split.default_count if count is None else int(count)
    if not 0 <= n <= split.capacity:
        raise ValueError(f"count {n} outside 0..{split.capacity} for split {name!r}")
    return list(range(split.first_seed, split.first_seed + n))


def split_lux(name: str, seed: int) -> float | None:
    """Illuminance for a stratified split's frame (None: drawn by render_sample itself).

    Frame i of a stratified split lies in bin i mod len(LUX_BINS), log-uniform inside it, so
    any prefix of 4k frames has exactly k frames per bin.
    """
    split = SPLITS[name]
    if not split.stratified:
        return None
    i = seed - split.first_seed
    lo, hi, _ = LUX_BINS[i % len(LUX_BINS)]
    hi = min(hi, 100_000.0)
    rng = np.random.default_rng([seed, 0x1B5])
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def iter_split(
    name: str, count: int | None = None, width: int = 640, height: int = 480
) -> Iterator[Sample]:
    """Render the frames of split ``name`` in order (deterministic, lazily)."""
    for seed in split_seeds(name, count):
        yield render_sample(seed, width, height, lux=split_lux(name, seed))
