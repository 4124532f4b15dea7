"""Energy meter against analytic power curves, windows, idle subtraction and sampler."""

from __future__ import annotations

import math
import threading
import time

import pytest

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.energy import EnergyMeter, efficiency, measure_idle
from edge_trt_ros.power.reading import PowerReading
from edge_trt_ros.power.sampler import PowerSampler


def reading(t: float, w: float, e: float | None = None, src: str = "fake", est: bool = False):
    return PowerReading(w, t, "module_input", src, est, e)


def feed(meter: EnergyMeter, times: list[float], power) -> None:  # type: ignore[no-untyped-def]
    for t in times:
        meter.add_reading(reading(t, power(t)))


def test_constant_power_fixed_window_and_ratios() -> None:
    m = EnergyMeter(None, macs=10**9, window_s=None)
    feed(m, [0.0, 0.3, 1.7, 4.0, 9.1, 10.0], lambda t: 5.0)
    m.add_frames(100, t=5.0)
    s = m.snapshot(refresh=False)
    assert s.energy_j == pytest.approx(50.0) and s.window_s == pytest.approx(10.0)
    assert s.mean_watts == pytest.approx(5.0) and s.fps == pytest.approx(10.0)
    assert s.energy_per_frame_mj == pytest.approx(500.0)  # 1000 * 50 J / 100
    assert s.fps_per_watt == pytest.approx(2.0)  # 100 / 50 J
    assert s.effective_tops_per_watt == pytest.approx(2 * 1e9 * 100 / 50 / 1e12)
    assert s.method == "trapezoid" and not s.rolling


def test_ramp_is_integrated_exactly() -> None:
    m = EnergyMeter(None, window_s=None)
    feed(m, [i * 0.5 for i in range(21)], lambda t: 2.0 + 0.5 * t)
    assert m.snapshot(refresh=False).energy_j == pytest.approx(2.0 * 10 + 0.25 * 100)


@pytest.mark.parametrize("n", [4, 10, 50])
def test_quadratic_matches_trapezoid_error_formula(n: int) -> None:
    m = EnergyMeter(None, window_s=None)
    feed(m, [i / n for i in range(n + 1)], lambda t: t * t)
    # trapezoid rule on t^2 over [0, 1]: 1/3 + 1/(6 n^2), exactly
    assert m.snapshot(refresh=False).energy_j == pytest.approx(1 / 3 + 1 / (6 * n * n))


def test_counter_differences_win_over_power() -> None:
    m = EnergyMeter(None, window_s=None)
    m.add_reading(reading(0.0, 100.0, e=1000.0))
    m.add_reading(reading(1.0, 100.0, e=1003.0))  # counter says 3 J, power says 100 J
    m.add_reading(reading(2.0, 100.0, e=1006.0))
    s = m.snapshot(refresh=False)
    assert s.energy_j == pytest.approx(6.0) and s.method == "counter"


def test_counter_reset_or_source_switch_falls_back_to_trapezoid() -> None:
    m = EnergyMeter(None, window_s=None)
    m.add_reading(reading(0.0, 10.0, e=50.0))
    m.add_reading(reading(1.0, 10.0, e=60.0))  # counter: 10 J
    m.add_reading(reading(2.0, 20.0, e=5.0))  # counter went backwards: trapezoid 15 J
    m.add_reading(reading(3.0, 4.0, src="estimate", est=True))  # switch: trapezoid 12 J
    s = m.snapshot(refresh=False)
    assert s.energy_j == pytest.approx(37.0)
    assert s.method == "counter+trapezoid" and s.estimated
    assert s.source == "estimate | fake"


def test_idle_subtracted_variant() -> None:
    m = EnergyMeter(None, macs=10**6, window_s=None, idle_watts=2.0)
    feed(m, [0.0, 10.0], lambda t: 5.0)
    m.add_frames(30, t=1.0)
    s = m.snapshot(refresh=False)
    assert s.dynamic_energy_j == pytest.approx(30.0)
    assert s.dynamic_energy_per_frame_mj == pytest.approx(1000.0)
    assert s.dynamic_fps_per_watt == pytest.approx(1.0)
    assert s.dynamic_tops_per_watt == pytest.approx(2 * 1e6 * 30 / 30 / 1e12)


def test_rolling_window_reports_length_and_counts_only_recent_frames() -> None:
    clock = [0.0]
    m = EnergyMeter(None, window_s=10.0, clock=lambda: clock[0])
    for i in range(301):  # 30 s at 10 Hz, 4 W, one frame per sample
        t = i * 0.1
        clock[0] = t
        m.add_reading(reading(t, 4.0))
        m.add_frames(1)
    s = m.snapshot(refresh=False)
    assert s.rolling and s.window_s == pytest.approx(10.0)
    assert s.energy_j == pytest.approx(40.0)
    assert s.frames == 100 and s.fps == pytest.approx(10.0)
    assert s.energy_per_frame_mj == pytest.approx(400.0)
    assert len(m._steps) <= 102  # bounded by the window


def test_rolling_window_interpolates_the_window_start() -> None:
    m = EnergyMeter(None, window_s=5.0)
    feed(m, [0.0, 4.0, 8.0], lambda t: 0.0 if t < 4.0 else 10.0)  # a step at t = 4
    # window [3, 8]: 0..4 ramps 0 -> 10 W (trapezoid 20 J, linear in E), 4..8 is 40 J
    assert m.snapshot(refresh=False).energy_j == pytest.approx(40.0 + 20.0 / 4)


def test_shorter_history_than_window() -> None:
    m = EnergyMeter(None, window_s=60.0)
    feed(m, [0.0, 1.0, 2.0], lambda t: 3.0)
    s = m.snapshot(refresh=False)
    assert s.window_s == pytest.approx(2.0) and s.energy_j == pytest.approx(6.0)


def test_fixed_window_storage_stays_bounded() -> None:
    m = EnergyMeter(None, window_s=None)
    feed(m, [i * 0.01 for i in range(10_001)], lambda t: 1.0)
    assert len(m._steps) == 2
    assert m.snapshot(refresh=False).energy_j == pytest.approx(100.0)


def test_empty_and_degenerate_windows() -> None:
    m = EnergyMeter(None)
    s = m.snapshot()
    assert s.energy_per_frame_mj is None and s.frames == 0 and s.window_s == 0.0
    assert efficiency(0.0, 10, 5) == (None, None, None)
    assert efficiency(1.0, 0, 5) == (None, None, None)
    assert efficiency(1.0, 1, None)[2] is None


def test_nan_and_out_of_order_readings_are_tolerated() -> None:
    m = EnergyMeter(None, window_s=None)
    m.add_reading(reading(0.0, 2.0))
    m.add_reading(reading(1.0, math.nan))
    m.add_reading(reading(0.5, 100.0))  # out of order: ignored
    m.add_reading(reading(2.0, 2.0))
    assert m.snapshot(refresh=False).energy_j == pytest.approx(4.0)


class ScriptedSensor:
    """Fake sensor: constant power, real monotonic time; can be told to fail."""

    name = "fake"
    scope = "module_input"
    source = "fake"
    estimated = False

    def __init__(self, watts: float = 3.0) -> None:
        self.watts = watts
        self.fail = False
        self.calls = 0
        self.lock = threading.Lock()

    def read(self) -> PowerReading:
        with self.lock:
            self.calls += 1
        if self.fail:
            raise SensorError("gone")
        return reading(time.monotonic(), self.watts)

    def energy_j(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def test_sampler_samples_stops_and_never_raises() -> None:
    sensor = ScriptedSensor(3.0)
    m = EnergyMeter(sensor, window_s=None)
    m.reset()
    with PowerSampler(m, period_s=0.01) as sampler:
        time.sleep(0.2)
        sensor.fail = True  # errors stay inside the thread
        time.sleep(0.05)
        assert sampler.running
        sensor.fail = False
        time.sleep(0.05)
    assert not sampler.running and sensor.calls > 10
    s = m.snapshot(refresh=False)
    assert s.mean_watts == pytest.approx(3.0)
    sampler.stop()  # idempotent


def test_measure_idle() -> None:
    assert measure_idle(ScriptedSensor(1.5), duration_s=0.1, period_s=0.01) == pytest.approx(1.5)
