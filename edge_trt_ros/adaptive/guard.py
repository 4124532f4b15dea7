"""The accuracy guard: which variants may run automatically under the light there is now.

A variant may be chosen automatically only when its mAP@0.5 drop against fp32 is at most
``max_accuracy_drop`` in the lux bin the camera is in. Near a bin edge every bin within a
margin of the measured lux must pass (light meters lag and the camera sees more than the
meter), and a variant that is not running must pass with twice that margin over all the
light of the last ``light_hold_s`` seconds before it is chosen, so neither noise on the
light reading nor a flickering shadow can switch it in and out. With the light unknown,
every bin and the overall figure must pass: the camera could be in any of them. A variant
with no measured accuracy never passes; fp32 is the reference and always does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_trt_ros.dataset.lighting import LUX_BINS, lux_bin

OVERALL = "overall"
BIN_NAMES: tuple[str, ...] = tuple(name for _, _, name in LUX_BINS)


@dataclass(frozen=True)
class Accuracy:
    """A variant's measured accuracy: mAP@0.5 and its drop against fp32, per lux bin."""

    map50: float | None = None
    per_bin_map50: Mapping[str, float] = field(default_factory=dict)
    drops: Mapping[str, float] = field(default_factory=dict)  # "overall" and bin names
    reference: bool = False  # fp32: the figures the drops are measured against

    @property
    def measured(self) -> bool:
        return self.reference or bool(self.drops)

    def drop(self, name: str) -> float | None:
        if self.reference:
            return 0.0
        value = self.drops.get(name)
        return None if value is None else float(value)

    @classmethod
    def from_evaluation(cls, evaluation: Mapping[str, Any] | None, precision: str) -> Accuracy:
        """From a manifest entry's ``evaluation`` (see variants/evaluate.py)."""
        ev = evaluation or {}
        drops = {k: float(v) for k, v in (ev.get("map50_drop_vs_fp32") or {}).items()
                 if v is not None}
        bins = {k: float(v) for k, v in (ev.get("per_lux_bin_map50") or {}).items()
                if v is not None}
        return cls(ev.get("map50"), bins, drops, reference=precision == "fp32")

    def to_dict(self) -> dict[str, Any]:
        return {"map50": self.map50, "per_bin_map50": dict(self.per_bin_map50),
                "drops": dict(self.drops), "reference": self.reference}


def _known(lux: float | None) -> bool:
    return lux is not None and math.isfinite(lux) and lux > 0


def bins_near(lux: float | None, margin_decades: float,
              upto: float | None = None) -> tuple[str, ...]:
    """Lux bins within ``margin_decades`` of ``lux`` (of the range ``lux``..``upto`` when
    given); every bin plus overall when the light is unknown."""
    if lux is None or not _known(lux):
        return (OVERALL, *BIN_NAMES)
    top = upto if upto is not None and _known(upto) and upto > lux else lux
    factor = 10.0 ** margin_decades
    lo, hi = lux / factor, top * factor
    found = [name for b_lo, b_hi, name in LUX_BINS if b_lo < hi and lo < b_hi]
    own = {lux_bin(lux), lux_bin(top)}  # outside the bins' range: the nearest bin (clamped)
    return tuple(name for name in BIN_NAMES if name in found or name in own)


@dataclass(frozen=True)
class GuardVerdict:
    passed: bool
    bins: tuple[str, ...]  # where it was checked
    worst: float | None  # largest drop over those bins (None: not measured there)
    why: str = ""  # why it failed, for a reason line

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "bins": list(self.bins), "worst_drop": self.worst,
                "why": self.why}


def check(accuracy: Accuracy, bins: tuple[str, ...], max_drop: float) -> GuardVerdict:
    """Pass when every bin in ``bins`` is measured and within ``max_drop``."""
    if accuracy.reference:
        return GuardVerdict(True, bins, 0.0)
    if not accuracy.measured:
        return GuardVerdict(False, bins, None, "accuracy not measured")
    drops = {b: accuracy.drop(b) for b in bins}
    missing = [b for b, d in drops.items() if d is None]
    known = [d for d in drops.values() if d is not None]
    worst = max(known) if known else None
    if missing:
        return GuardVerdict(False, bins, worst, f"accuracy not measured in {', '.join(missing)}")
    over = [f"{b} {d * 100:.2f}" for b, d in drops.items() if d is not None
            and d > max_drop + 1e-9]
    if over:
        return GuardVerdict(False, bins, worst, f"loses {', '.join(over)} mAP points "
                            f"(max {max_drop * 100:.2f})")
    return GuardVerdict(True, bins, worst)
