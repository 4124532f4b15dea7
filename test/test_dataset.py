"""The synthetic dataset: reproducible frames, exact labels, disjoint and lux-stratified splits.

Every consumer (trainer, evaluator, INT8 calibrator, camera node) regenerates frames from
seeds instead of shipping data, so these properties are what makes a reported mAP mean the
same thing on every machine.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edge_trt_ros.dataset import (
    CLASS_NAMES,
    LUX_BINS,
    LUX_MAX,
    LUX_MIN,
    SPLITS,
    iter_split,
    lux_bin,
    render_sample,
    sample_lux,
    split_lux,
    split_seeds,
)

SEEDS = (0, 7, 123_456, 30_000_001)  # includes a test-split seed


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_same_seed_gives_identical_frame(seed: int) -> None:
    """Two renders of one seed must agree byte for byte, or splits would not be fixed."""
    a, b = render_sample(seed), render_sample(seed)
    assert a.image.tobytes() == b.image.tobytes()
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert (a.lux, a.material) == (b.lux, b.material)


def test_different_seeds_give_different_frames() -> None:
    samples = [render_sample(s) for s in SEEDS]
    for a, b in itertools.combinations(samples, 2):
        assert a.image.tobytes() != b.image.tobytes()
        assert a.lux != b.lux
    # Labels vary too (not just the noise): no two of these frames share their boxes.
    box_sets = {s.boxes.tobytes() for s in samples}
    assert len(box_sets) == len(samples)


def test_scene_depends_only_on_seed_when_lux_varies() -> None:
    """Re-rendering one scene at several illuminances changes the photo, never the labels."""
    seed = 7
    renders = [render_sample(seed, lux=v, with_masks=True) for v in (15.0, 800.0, 60_000.0)]
    ref = renders[0]
    assert ref.masks is not None and len(ref.masks) == len(ref.boxes) > 0
    for s in renders[1:]:
        np.testing.assert_array_equal(s.boxes, ref.boxes)
        np.testing.assert_array_equal(s.class_ids, ref.class_ids)
        assert s.material == ref.material
        assert s.masks is not None
        for m, m_ref in zip(s.masks, ref.masks, strict=True):
            np.testing.assert_array_equal(m, m_ref)
        assert s.image.tobytes() != ref.image.tobytes()
    assert [s.lux for s in renders] == [15.0, 800.0, 60_000.0]


def test_explicit_lux_equal_to_drawn_lux_reproduces_the_frame() -> None:
    """The lux draw has its own stream: passing the drawn value back gives the same bytes."""
    drawn = render_sample(123_456)
    again = render_sample(123_456, lux=drawn.lux)
    assert again.image.tobytes() == drawn.image.tobytes()


@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_are_tight_bounds_of_defect_masks(seed: int) -> None:
    """Each box is exactly the extent of the pixels its defect changed (edges exclusive)."""
    s = render_sample(seed, with_masks=True)
    h, w = s.image.shape[:2]
    assert s.image.shape == (480, 640, 3) and s.image.dtype == np.uint8
    assert s.boxes.dtype == np.float32 and s.class_ids.dtype == np.int64
    assert s.masks is not None and len(s.masks) == len(s.boxes) == len(s.class_ids)
    for box, mask in zip(s.boxes, s.masks, strict=True):
        assert mask.shape == (h, w) and mask.any()
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert len(s.boxes) > 0  # these seeds have defects, so the checks below do run
    x0, y0, x1, y1 = s.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= w).all() and (y1 <= h).all()
    assert (x1 > x0).all() and (y1 > y0).all()
    assert set(s.class_ids.tolist()) <= set(range(len(CLASS_NAMES)))


def test_boxes_are_exact_at_another_resolution() -> None:
    """Stamps scale with the frame; labels must stay exact and inside a smaller image."""
    s = render_sample(11, width=320, height=240, with_masks=True)
    assert s.image.shape == (240, 320, 3)
    assert s.masks is not None and len(s.masks) > 0
    for box, mask in zip(s.boxes, s.masks, strict=True):
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert box[2] <= 320 and box[3] <= 240


def test_defects_do_not_overlap_and_all_classes_occur() -> None:
    """Placement rejects overlaps, so no pixel belongs to two labelled defects."""
    multi, classes = 0, set()
    for seed in range(6):
        s = render_sample(seed, with_masks=True)
        assert s.masks is not None
        classes |= set(s.class_ids.tolist())
        if len(s.masks) > 1:
            multi += 1
            assert int(np.sum(s.masks, axis=0).max()) == 1
    assert multi >= 3 and classes == set(range(len(CLASS_NAMES)))


def test_masks_only_on_request() -> None:
    assert render_sample(3).masks is None


def test_split_seed_ranges_are_disjoint() -> None:
    """No frame can be in two splits, even at full capacity (train/test leakage)."""
    ranges = sorted((s.first_seed, s.first_seed + s.capacity) for s in SPLITS.values())
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end <= start
    default = {name: set(split_seeds(name)) for name in SPLITS}
    for a, b in itertools.combinations(default, 2):
        assert not default[a] & default[b], (a, b)
    assert {n: len(v) for n, v in default.items()} == {
        "train": 24_000, "val": 400, "calib": 512, "test": 800,
    }


def test_split_count_is_bounded_by_capacity() -> None:
    with pytest.raises(ValueError, match="outside"):
        split_seeds("test", SPLITS["test"].capacity + 1)
    assert split_seeds("val", 3) == [10_000_000, 10_000_001, 10_000_002]


@pytest.mark.parametrize("name", ["calib", "test"])
def test_stratified_splits_have_equal_counts_per_lux_bin(name: str) -> None:
    """Frame i of a stratified split lies in bin i mod 4, so every bin is equally represented."""
    seeds = split_seeds(name)
    luxes = [split_lux(name, seed) for seed in seeds]
    counts = {bin_name: 0 for _, _, bin_name in LUX_BINS}
    for i, lux in enumerate(luxes):
        assert lux is not None
        lo, hi, bin_name = LUX_BINS[i % len(LUX_BINS)]
        assert lo <= lux < min(hi, LUX_MAX), (i, lux)
        assert lux_bin(lux) == bin_name
        counts[bin_name] += 1
    assert set(counts.values()) == {len(seeds) // len(LUX_BINS)}
    # Any prefix of 4k frames is balanced too (the shipped-model test uses a prefix).
    prefix = [lux_bin(v) for v in luxes[:48] if v is not None]
    assert all(prefix.count(b) == 12 for _, _, b in LUX_BINS)


def test_unstratified_splits_leave_lux_to_the_renderer() -> None:
    assert split_lux("train", 5) is None and split_lux("val", 10_000_000) is None


def test_iter_split_renders_the_stratified_lux() -> None:
    frames = list(iter_split("test", 4))
    assert [f.seed for f in frames] == split_seeds("test", 4)
    assert [f.lux for f in frames] == [split_lux("test", s) for s in split_seeds("test", 4)]
    assert [lux_bin(f.lux) for f in frames] == [b for _, _, b in LUX_BINS]


def test_lux_is_log_uniform_over_10_to_100k() -> None:
    """Equal weight per decade: the factory's 10–100k lux swing is logarithmic."""
    rng = np.random.default_rng(0)
    draws = np.array([sample_lux(rng) for _ in range(8000)])
    assert (LUX_MIN, LUX_MAX) == (10.0, 100_000.0)
    assert draws.min() >= LUX_MIN and draws.max() < LUX_MAX
    per_decade = np.histogram(np.log10(draws), bins=[1, 2, 3, 4, 5])[0] / len(draws)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.025)
    # A linear-uniform draw would put ~90% of frames in the top decade; log-uniform ~25%.
    assert math.isclose(float(np.mean(np.log10(draws))), 3.0, abs_tol=0.05)


def test_rendered_lux_lies_in_range() -> None:
    for seed in SEEDS:
        assert LUX_MIN <= render_sample(seed, width=64, height=48).lux < LUX_MAX


def test_lux_bins_cover_the_range_without_gaps() -> None:
    assert LUX_BINS[0][0] == LUX_MIN and LUX_BINS[-1][1] > LUX_MAX
    for (_, hi, _), (lo, _, _) in itertools.pairwise(LUX_BINS):
        assert hi == lo
    assert lux_bin(LUX_MAX) == "sunlit" and lux_bin(99.999) == "dark" and lux_bin(100.0) == "dim"
