"""Background sampling for sensors without energy counters (INA3221, jtop, estimate).

Trapezoid integration is only as good as the sample rate, so something must poll while
the inference thread is busy; this thread does, and nothing it meets reaches callers.
"""

from __future__ import annotations

import logging
import threading

from edge_trt_ros.power.energy import EnergyMeter

log = logging.getLogger("edge_trt_ros.power.sampler")


class PowerSampler:
    """Calls ``meter.sample()`` every ``period_s`` on a daemon thread until stopped."""

    def __init__(self, meter: EnergyMeter, period_s: float = 0.05) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be > 0")
        self.meter = meter
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> PowerSampler:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edge-trt-power", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.meter.sample()
            except Exception as e:  # sample() does not raise; belt and braces
                self.errors += 1
                if self.errors == 1:
                    log.exception("power sampler error (further ones counted, not logged): %s", e)
            if self._stop.wait(self.period_s):
                return

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop and join; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("power sampler did not stop in %.1f s (sensor read hung?)", timeout_s)
            self._thread = None

    def __enter__(self) -> PowerSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
