"""A scripted AGV shift as plain data: light, temperature and battery every ``step_s``.

The trace is only a list of timed samples (:class:`ShiftTrace`), independent of how it is
replayed: :func:`edge_trt_ros.adaptive.replay.replay` feeds it to the controller directly,
and a node-level benchmark can publish the same samples on ``illuminance``,
``temperature`` and ``battery_state``. The default 8-hour shift:

- light: a loading dock in the sun (~40 klux), through the doors (bright) to the factory
  floor (dim) and the unlit night aisles (dark, ~40 lux), and back; log-normal noise on every
  reading and a few short shadows (racks, other vehicles) per hour;
- heat: the device warms from 45 C to ``peak_margin_c`` below ``throttle_c`` in the middle of
  the shift and cools again;
- battery: drains from ``battery_start_pct`` to ``battery_end_pct`` (whole percent, as a BMS
  reports it), not charging.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# (fraction of the shift, lux): log-interpolated between these points
LIGHT_SCRIPT: tuple[tuple[float, float], ...] = (
    (0.00, 40_000.0), (0.12, 40_000.0),   # loading dock, direct sun
    (0.20, 3_000.0),                      # through the doors
    (0.30, 400.0), (0.40, 400.0),         # factory floor
    (0.45, 40.0), (0.62, 40.0),           # night aisles, lights off
    (0.68, 400.0), (0.80, 3_000.0),
    (0.90, 40_000.0), (1.00, 40_000.0),   # back to the dock
)


@dataclass(frozen=True)
class ShiftSample:
    t: float  # seconds since the start of the shift
    lux: float
    celsius: float
    throttling: bool
    battery_pct: float
    charging: bool


@dataclass(frozen=True)
class ShiftTrace:
    samples: tuple[ShiftSample, ...]
    step_s: float
    throttle_c: float
    seed: int
    description: str

    @property
    def hours(self) -> float:
        return len(self.samples) * self.step_s / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {"step_s": self.step_s, "throttle_c": self.throttle_c, "seed": self.seed,
                "description": self.description,
                "samples": [asdict(s) for s in self.samples]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShiftTrace:
        return cls(tuple(ShiftSample(**s) for s in d["samples"]), float(d["step_s"]),
                   float(d["throttle_c"]), int(d["seed"]), str(d["description"]))


def scripted_lux(fraction: np.ndarray, script: tuple[tuple[float, float], ...] = LIGHT_SCRIPT
                 ) -> np.ndarray:
    xs = np.array([p for p, _ in script])
    logs = np.log10([lux for _, lux in script])
    return np.asarray(10.0 ** np.interp(fraction, xs, logs))


def shift_trace(hours: float = 8.0, step_s: float = 1.0, seed: int = 0, *,
                throttle_c: float = 90.0, start_c: float = 45.0, peak_margin_c: float = 2.0,
                battery_start_pct: float = 95.0, battery_end_pct: float = 12.0,
                lux_noise: float = 0.10, temp_noise_c: float = 0.5,
                shadows_per_hour: float = 3.0,
                light: tuple[tuple[float, float], ...] = LIGHT_SCRIPT) -> ShiftTrace:
    """The scripted shift (see the module docstring); deterministic for a seed."""
    n = max(1, int(round(hours * 3600.0 / step_s)))
    rng = np.random.default_rng(seed)
    t = np.arange(n) * step_s
    x = t / max(hours * 3600.0, 1e-9)
    lux = scripted_lux(x, light) * np.exp(rng.normal(0.0, lux_noise, n))
    for _ in range(rng.poisson(shadows_per_hour * hours)):  # brief shadows: racks, vehicles
        at, length = rng.uniform(0, n * step_s), rng.uniform(20.0, 90.0)
        inside = (t >= at) & (t < at + length)
        lux[inside] *= rng.uniform(0.2, 0.5)
    peak = throttle_c - peak_margin_c
    celsius = start_c + (peak - start_c) * np.exp(-(((x - 0.45) / 0.12) ** 2))
    celsius = celsius + rng.normal(0.0, temp_noise_c, n)
    battery = np.floor(battery_start_pct + (battery_end_pct - battery_start_pct) * x)
    samples = tuple(
        ShiftSample(float(t[i]), float(lux[i]), round(float(celsius[i]), 2),
                    bool(celsius[i] >= throttle_c), float(battery[i]), False)
        for i in range(n))
    desc = (f"{hours:g} h shift every {step_s:g} s: light sunlit -> bright -> dim -> dark -> "
            f"back (log-normal noise {lux_noise:g}, {shadows_per_hour:g} shadows/h); "
            f"{start_c:g} C rising to {peak:g} C (throttle {throttle_c:g} C) mid-shift; "
            f"battery {battery_start_pct:g}% -> {battery_end_pct:g}%, not charging")
    return ShiftTrace(samples, step_s, throttle_c, seed, desc)
