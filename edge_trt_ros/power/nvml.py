"""NVIDIA dGPU board power through NVML (``pip install nvidia-ml-py``, module ``pynvml``).

Volta and newer keep a total-energy counter (mJ since the driver loaded); a difference of
two reads is the board energy without any sampling error, so it is preferred. Power
(mW) comes from the instantaneous field where the driver has it: on Ampere (except
GA100) and newer, ``nvmlDeviceGetPowerUsage`` is a 1 s average.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.reading import PowerReading, Scope

log = logging.getLogger("edge_trt_ros.power.nvml")


def import_pynvml() -> Any:
    """Import pynvml lazily; SensorError with an install hint when absent."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as e:
        raise SensorError(f"nvidia-ml-py not installed (import pynvml failed: {e})") from e


class NvmlSensor:
    """Board power and energy of one NVIDIA GPU."""

    estimated = False
    scope = Scope.GPU_BOARD

    def __init__(self, nvml: Any, index: int = 0) -> None:
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as e:
            raise SensorError(f"NVML init failed ({e}): no NVIDIA driver or no GPU") from e
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
            raw = nvml.nvmlDeviceGetName(self._handle)
            self.device_name = raw.decode() if isinstance(raw, bytes) else str(raw)
        except Exception as e:
            self._shutdown()
            raise SensorError(f"NVML has no GPU {index} ({e})") from e
        self.name = "nvml"
        self.index = index
        self.has_counter = self._probe_counter()
        self._instant_field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        self._power_method = "power_usage"
        if self._instant_field is not None and self._read_instant_mw() is not None:
            self._power_method = "power_instant"
        try:
            self._power_mw()
        except Exception as e:
            if not self.has_counter:
                self._shutdown()
                msg = f"NVML reports neither energy nor power on GPU {index}: {e}"
                raise SensorError(msg) from e
        counter = "energy counter" if self.has_counter else "no energy counter"
        self.source = f"nvml:{index}:{self.device_name} ({counter}, {self._power_method})"

    def _probe_counter(self) -> bool:
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            return True
        except Exception as e:
            log.info("NVML total-energy counter not supported (%s); integrating power", e)
            return False

    def _read_instant_mw(self) -> float | None:
        try:
            values = self._nvml.nvmlDeviceGetFieldValues(self._handle, [self._instant_field])
            v = values[0]
            if getattr(v, "nvmlReturn", 1) != 0:
                return None
            return float(v.value.uiVal)
        except Exception:
            return None

    def _power_mw(self) -> float:
        if self._power_method == "power_instant":
            mw = self._read_instant_mw()
            if mw is not None:
                return mw
        return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle))

    def read(self) -> PowerReading:
        t = time.monotonic()
        try:
            energy = self.energy_j()
            watts = self._power_mw() / 1000.0
        except SensorError:
            raise
        except Exception as e:
            raise SensorError(f"NVML read failed on GPU {self.index}: {e}") from e
        return PowerReading(watts, t, self.scope, self.source, False, energy)

    def energy_j(self) -> float | None:
        if not self.has_counter:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)) / 1000.0
        except Exception as e:
            raise SensorError(f"NVML energy counter read failed on GPU {self.index}: {e}") from e

    def utilisation(self) -> float:
        """GPU busy fraction 0..1 (for the estimate sensor)."""
        return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu) / 100.0

    @property
    def handle(self) -> Any:
        return self._handle

    @property
    def library(self) -> Any:
        """The pynvml module this sensor was opened with (for temperature/throttle queries)."""
        return self._nvml

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception as e:
            log.debug("nvmlShutdown failed: %s", e)

    def close(self) -> None:
        self._shutdown()


def probe_nvml(index: int = 0, nvml: Any | None = None) -> NvmlSensor:
    """Open GPU ``index`` through NVML; raises SensorError saying why not."""
    return NvmlSensor(nvml if nvml is not None else import_pynvml(), index)


def nvml_device_name(index: int = 0, nvml: Any | None = None) -> str | None:
    """GPU name for profile detection, or None without NVML/GPU."""
    try:
        sensor = probe_nvml(index, nvml)
    except SensorError:
        return None
    name = sensor.device_name
    sensor.close()
    return name
