"""Energy per frame, FPS/W and effective TOPS/W over rolling or fixed windows.

Energy comes from counter differences where the sensor has a counter (NVML, RAPL), else
from trapezoid integration of sampled power on the monotonic clock. Per window:
``mJ/frame = 1000*E/N``, ``FPS/W = N/E``, ``TOPS/W = 2*MACs*N/E/1e12``, and the same
with the idle baseline subtracted (``E - P_idle*T``) to isolate what inference costs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edge_trt_ros.power.reading import PowerReading, PowerSensor

log = logging.getLogger("edge_trt_ros.power.energy")

COUNTER = "counter"
TRAPEZOID = "trapezoid"


@dataclass(frozen=True)
class EfficiencySnapshot:
    """Efficiency over one window; ratios are None where undefined (no frames, no energy)."""

    window_s: float
    rolling: bool
    frames: int
    fps: float
    energy_j: float
    mean_watts: float | None
    watts: float | None  # latest instantaneous reading
    energy_per_frame_mj: float | None
    fps_per_watt: float | None
    effective_tops_per_watt: float | None
    idle_watts: float | None
    dynamic_energy_j: float | None
    dynamic_energy_per_frame_mj: float | None
    dynamic_fps_per_watt: float | None
    dynamic_tops_per_watt: float | None
    estimated: bool
    scope: str
    source: str
    method: str  # "counter", "trapezoid" or "counter+trapezoid"
    samples: int


def efficiency(
    energy_j: float, frames: int, macs: int | None
) -> tuple[float | None, float | None, float | None]:
    """(mJ/frame, FPS/W, TOPS/W) for ``frames`` inferences costing ``energy_j``."""
    if frames <= 0 or not energy_j > 0:
        return None, None, None
    tops = 2.0 * macs * frames / energy_j / 1e12 if macs else None
    return 1000.0 * energy_j / frames, frames / energy_j, tops


@dataclass(frozen=True)
class _Step:
    t: float
    cum_j: float
    method: str
    estimated: bool
    scope: str
    source: str
    watts: float


class EnergyMeter:
    """Accumulates power readings and frame counts; thread-safe, never raises on sample.

    ``window_s`` set: a rolling window of that length (live topic). ``window_s=None``: a
    fixed window from the last :meth:`reset` (benchmarks; MLPerf uses >= 60 s).
    """

    def __init__(
        self,
        sensor: PowerSensor | None,
        macs: int | None = None,
        window_s: float | None = 10.0,
        idle_watts: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 100_000,
        max_frame_records: int = 200_000,
    ) -> None:
        self.sensor = sensor
        self.macs = macs
        self.window_s = window_s
        self.idle_watts = idle_watts
        self._clock = clock
        self._max_samples = max_samples
        self._max_frames = max_frame_records
        self._lock = threading.Lock()
        self._last_error = ""
        self.reset(sample=False)

    # -- input -------------------------------------------------------------------------
    def reset(self, sample: bool = True) -> None:
        """Start a new window (fixed mode) and forget all history."""
        with self._lock:
            self._steps: deque[_Step] = deque()
            self._last: PowerReading | None = None
            self._cum_j = 0.0
            self._frames: deque[tuple[float, int]] = deque()
            self._frames_sum = 0
            self._agg: dict[str, set[str]] = {"method": set(), "scope": set(), "source": set()}
            self._agg_estimated = False
        if sample:
            self.sample()

    def sample(self) -> PowerReading | None:
        """Read the sensor once and record it; returns None (and logs) on failure."""
        if self.sensor is None:
            return None
        try:
            reading = self.sensor.read()
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            if msg != self._last_error:
                log.warning("power sample failed: %s", msg)
                self._last_error = msg
            return None
        self.add_reading(reading)
        return reading

    def add_reading(self, r: PowerReading) -> None:
        """Record one reading (the sampler thread calls this through :meth:`sample`)."""
        with self._lock:
            last = self._last
            if last is None:
                method = COUNTER if r.energy_j is not None else TRAPEZOID
                d_j = 0.0
            else:
                dt = r.t - last.t
                if dt <= 0:
                    return  # out-of-order or duplicate timestamp
                if (
                    r.energy_j is not None
                    and last.energy_j is not None
                    and r.source == last.source
                    and r.energy_j >= last.energy_j
                ):
                    method, d_j = COUNTER, r.energy_j - last.energy_j
                else:
                    w0 = last.watts if math.isfinite(last.watts) else r.watts
                    w1 = r.watts if math.isfinite(r.watts) else w0
                    method = TRAPEZOID
                    d_j = 0.5 * (w0 + w1) * dt if math.isfinite(w0 + w1) else 0.0
            self._last = r
            self._cum_j += d_j
            step = _Step(r.t, self._cum_j, method, r.estimated, r.scope, r.source, r.watts)
            if self.window_s is None:
                self._record_fixed(step, first=last is None)
            else:
                self._steps.append(step)
                self._trim(r.t)

    def _record_fixed(self, step: _Step, first: bool) -> None:
        if not first:
            self._agg["method"].add(step.method)
        self._agg["scope"].add(step.scope)
        self._agg["source"].add(step.source)
        self._agg_estimated |= step.estimated
        if len(self._steps) >= 2:
            self._steps.pop()  # keep the window start and the latest step only
        self._steps.append(step)

    def add_frames(self, n: int = 1, t: float | None = None) -> None:
        """Count ``n`` finished inferences at time ``t`` (monotonic; now by default)."""
        if n <= 0:
            return
        t = self._clock() if t is None else t
        with self._lock:
            if self.window_s is None:
                self._frames_sum += n
                return
            self._frames.append((t, n))
            self._frames_sum += n
            while len(self._frames) > self._max_frames:
                self._frames_sum -= self._frames.popleft()[1]

    def _trim(self, now: float) -> None:
        assert self.window_s is not None
        start = now - self.window_s
        while len(self._steps) >= 2 and self._steps[1].t <= start:
            self._steps.popleft()
        while len(self._steps) > self._max_samples:
            self._steps.popleft()
        while self._frames and self._frames[0][0] <= start:
            self._frames_sum -= self._frames.popleft()[1]

    # -- output ------------------------------------------------------------------------
    def _energy_at(self, t: float) -> float:
        s0 = self._steps[0]
        if t <= s0.t or len(self._steps) < 2:
            return s0.cum_j
        s1 = self._steps[1]
        frac = (t - s0.t) / (s1.t - s0.t)
        return s0.cum_j + frac * (s1.cum_j - s0.cum_j)

    def snapshot(self, refresh: bool = True) -> EfficiencySnapshot:
        """Efficiency over the current window; ``refresh`` samples first so it ends now."""
        if refresh:
            self.sample()
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> EfficiencySnapshot:
        rolling = self.window_s is not None
        if not self._steps:
            return EfficiencySnapshot(
                0.0, rolling, self._frames_sum, 0.0, 0.0, None, None, None, None, None,
                self.idle_watts, None, None, None, None, True, "", "", "", 0,
            )  # fmt: skip
        end = self._steps[-1]
        if rolling:
            assert self.window_s is not None
            self._trim(end.t)
            start_t = max(end.t - self.window_s, self._steps[0].t)
            energy = end.cum_j - self._energy_at(start_t)
            inside = [s for s in self._steps if s.t > start_t] or [end]
            methods = {s.method for s in inside}
            scopes = {s.scope for s in inside}
            sources = {s.source for s in inside}
            estimated = any(s.estimated for s in inside)
        else:
            start_t = self._steps[0].t
            energy = end.cum_j - self._steps[0].cum_j
            methods = set(self._agg["method"]) or {end.method}
            scopes, sources = self._agg["scope"], self._agg["source"]
            estimated = self._agg_estimated
        window = end.t - start_t
        frames = self._frames_sum
        mean_w = energy / window if window > 0 else None
        mj, fpw, tops = efficiency(energy, frames, self.macs)
        dyn_j = dmj = dfpw = dtops = None
        if self.idle_watts is not None and window > 0:
            dyn_j = energy - self.idle_watts * window
            dmj, dfpw, dtops = efficiency(dyn_j, frames, self.macs)
        return EfficiencySnapshot(
            window_s=window,
            rolling=rolling,
            frames=frames,
            fps=frames / window if window > 0 else 0.0,
            energy_j=energy,
            mean_watts=mean_w,
            watts=end.watts,
            energy_per_frame_mj=mj,
            fps_per_watt=fpw,
            effective_tops_per_watt=tops,
            idle_watts=self.idle_watts,
            dynamic_energy_j=dyn_j,
            dynamic_energy_per_frame_mj=dmj,
            dynamic_fps_per_watt=dfpw,
            dynamic_tops_per_watt=dtops,
            estimated=estimated,
            scope="+".join(sorted(scopes)),
            source=" | ".join(sorted(sources)),
            method="+".join(sorted(methods)),
            samples=len(self._steps) if rolling else -1,
        )


def measure_idle(
    sensor: PowerSensor,
    duration_s: float = 5.0,
    period_s: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Mean power over ``duration_s`` with nothing running: the idle baseline (W)."""
    meter = EnergyMeter(sensor, window_s=None)
    meter.reset()
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        sleep(period_s)
        meter.sample()
    return meter.snapshot().mean_watts
