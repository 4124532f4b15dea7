"""Deterministic synthetic industrial-defect dataset (numpy + OpenCV only, no ROS, no torch).

``render_sample(seed)`` draws a part surface with scratches, cracks, dents and stains and
photographs it with a camera model at an illuminance between 10 and 100,000 lux.
"""

from .defects import CLASS_NAMES
from .lighting import LUX_BINS, LUX_MAX, LUX_MIN, lux_bin, sample_lux
from .render import Sample, render_sample
from .splits import SPLITS, iter_split, split_lux, split_seeds

__all__ = [
    "CLASS_NAMES",
    "LUX_BINS",
    "LUX_MAX",
    "LUX_MIN",
    "SPLITS",
    "Sample",
    "iter_split",
    "lux_bin",
    "render_sample",
    "sample_lux",
    "split_lux",
    "split_seeds",
]
