"""The controller's settings as one value: the node's ``adaptive.*`` parameters plus the
margins that keep it from oscillating.

Every field has a range, checked by :meth:`ControllerConfig.validate` so a parameter
callback can refuse a bad value with the reason before anything changes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edge_trt_ros.errors import AdaptiveConfigError

EFFICIENCY, THROUGHPUT, ACCURACY = "efficiency", "throughput", "accuracy"
OBJECTIVES: tuple[str, ...] = (EFFICIENCY, THROUGHPUT, ACCURACY)
DEFAULT_MAX_ACCURACY_DROP = 0.005  # half a point of mAP@0.5, the guard


@dataclass(frozen=True)
class ControllerConfig:
    """What the controller optimises and how cautiously it moves."""

    objective: str = EFFICIENCY
    target_fps: float = 0.0  # 0 = no frame-rate constraint
    power_budget_w: float = 0.0  # 0 = no power constraint
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP  # mAP@0.5 vs fp32 (0.01 = 1 point)
    min_dwell_s: float = 60.0  # no automatic switch sooner after the last (guard excepted)
    # A candidate must beat the current variant by this fraction of the objective's figure
    # (mJ/frame, fps, W); the current one only fails target_fps / power_budget_w once it is
    # this fraction past them. Accuracy differences use accuracy_hysteresis (absolute).
    hysteresis: float = 0.10
    accuracy_hysteresis: float = 0.001  # 0.1 mAP@0.5 point
    # Light near a bin edge: the running variant must pass the guard in every bin within
    # lux_margin_decades of the measured lux; a candidate within twice that of every reading
    # of the last light_hold_s seconds (a Schmitt trigger on light: it moves away before the
    # edge and does not come back on noise or a passing shadow).
    lux_margin_decades: float = 0.1
    light_hold_s: float = 60.0
    # Thermal protection starts thermal_margin_c below the throttle threshold and ends
    # thermal_release_c below it.
    thermal_margin_c: float = 5.0
    thermal_release_c: float = 10.0
    battery_low_pct: float = 20.0  # below this, not charging: favour energy
    battery_release_pct: float = 25.0
    stale_s: float = 10.0  # an illuminance/temperature/battery reading older than this is unknown
    refused_retry_s: float = 300.0  # a variant the runtime refused is not tried again sooner
    allow_priors: bool = True  # may switch to a variant whose efficiency is only a prior

    def validate(self) -> ControllerConfig:
        """Return self, or raise :class:`AdaptiveConfigError` naming the bad field."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise AdaptiveConfigError(what)

        need(self.objective in OBJECTIVES,
             f"adaptive objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        for name in ("target_fps", "power_budget_w", "min_dwell_s", "hysteresis",
                     "accuracy_hysteresis", "lux_margin_decades", "light_hold_s",
                     "thermal_margin_c", "thermal_release_c", "stale_s", "refused_retry_s"):
            value = getattr(self, name)
            need(isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                 f"adaptive {name} must be a finite number >= 0 (got {value!r})")
        need(0.0 <= self.max_accuracy_drop <= 1.0,
             f"adaptive max_accuracy_drop must be in [0, 1] mAP (0.005 = half a point), got "
             f"{self.max_accuracy_drop!r}")
        need(self.hysteresis < 1.0, f"adaptive hysteresis must be < 1 (got {self.hysteresis})")
        need(self.lux_margin_decades <= 0.5,
             f"adaptive lux_margin_decades must be <= 0.5 (got {self.lux_margin_decades})")
        need(self.thermal_release_c >= self.thermal_margin_c,
             f"adaptive thermal_release_c ({self.thermal_release_c}) must be >= "
             f"thermal_margin_c ({self.thermal_margin_c}), or protection would flap")
        need(0.0 <= self.battery_low_pct <= self.battery_release_pct <= 100.0,
             f"adaptive battery thresholds need 0 <= battery_low_pct ({self.battery_low_pct}) "
             f"<= battery_release_pct ({self.battery_release_pct}) <= 100")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
