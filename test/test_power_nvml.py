"""NVML sensor, for real: runs where nvidia-ml-py imports and a GPU answers, else skips.

The agreement test (counter energy vs integrated sampled power over one loaded interval)
also needs torch with CUDA and ``EDGE_TRT_GPU_LOAD_TEST=1`` because it loads the GPU
for ~20 s.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.energy import EnergyMeter
from edge_trt_ros.power.nvml import NvmlSensor, probe_nvml
from edge_trt_ros.power.reading import Scope
from edge_trt_ros.power.thermal import read_thermal


def _nvml_or_skip() -> NvmlSensor:
    pytest.importorskip("pynvml", reason="nvidia-ml-py not installed")
    try:
        return probe_nvml(0)
    except SensorError as e:
        pytest.skip(f"no NVML GPU: {e}")


def test_nvml_reads_power_and_energy() -> None:
    sensor = _nvml_or_skip()
    try:
        r1 = sensor.read()
        time.sleep(0.2)
        r2 = sensor.read()
        assert r1.scope == Scope.GPU_BOARD and not r1.estimated
        assert 1.0 < r2.watts < 2000.0
        if sensor.has_counter:
            assert r1.energy_j is not None and r2.energy_j is not None
            assert r2.energy_j >= r1.energy_j
        th = read_thermal("/", sensor)
        assert th.gpu_celsius is not None and 0.0 < th.gpu_celsius < 120.0
        print(f"\n{sensor.source}: {r2.watts:.1f} W, GPU {th.gpu_celsius:.0f} C, {th.reasons}")
    finally:
        sensor.close()


def _matmul_load(stop: threading.Event) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    while not stop.is_set():
        for _ in range(10):
            a @ b  # noqa: B018 - the work is the point
        torch.cuda.synchronize()


@pytest.mark.skipif(
    os.environ.get("EDGE_TRT_GPU_LOAD_TEST") != "1", reason="set EDGE_TRT_GPU_LOAD_TEST=1"
)
def test_nvml_counter_agrees_with_integrated_power() -> None:
    sensor = _nvml_or_skip()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    if not sensor.has_counter:
        pytest.skip("GPU has no NVML total-energy counter")
    stop = threading.Event()
    load = threading.Thread(target=_matmul_load, args=(stop,), daemon=True)
    load.start()
    try:
        time.sleep(4.0)  # reach steady load (and fill NVML's 1 s power average)
        by_counter = EnergyMeter(sensor, window_s=None)
        by_power = EnergyMeter(None, window_s=None)
        t_end = time.monotonic() + 16.0
        while time.monotonic() < t_end:
            r = sensor.read()
            by_counter.add_reading(r)
            by_power.add_reading(dataclasses.replace(r, energy_j=None))
            time.sleep(0.02)
    finally:
        stop.set()
        load.join(30)
        sensor.close()
    a = by_counter.snapshot(refresh=False)
    b = by_power.snapshot(refresh=False)
    rel = abs(b.energy_j - a.energy_j) / a.energy_j
    print(
        f"\nNVML {sensor.source}\n  counter:    {a.energy_j:.1f} J over {a.window_s:.2f} s "
        f"(mean {a.mean_watts:.1f} W, method {a.method})\n  integrated: {b.energy_j:.1f} J "
        f"over {b.window_s:.2f} s (mean {b.mean_watts:.1f} W, method {b.method})\n"
        f"  difference: {100 * rel:.2f} %"
    )
    assert a.method == "counter" and b.method == "trapezoid"
    assert rel < 0.05
