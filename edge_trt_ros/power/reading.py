"""The one small interface every power sensor implements.

A figure without provenance is useless for the energy-per-inference argument, so every
reading carries where it came from (source), what it covers (scope) and whether it was
measured or estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Scope:
    """What part of the machine a reading covers."""

    MODULE_INPUT = "module_input"  # Jetson module input rail (VDD_IN / POM_5V_IN)
    RAIL_SUM = "rail_sum"  # documented sum of measured rails (no module-input rail)
    GPU_BOARD = "gpu_board"  # NVML: the whole dGPU board
    CPU_PACKAGE = "cpu_package"  # RAPL package domain(s)
    SYSTEM_ESTIMATE = "system_estimate"  # modelled from the hardware profile


@dataclass(frozen=True)
class PowerReading:
    """One power sample.

    ``t`` is ``time.monotonic()`` seconds, so intervals survive wall-clock jumps (NTP on
    a robot). ``energy_j`` is the sensor's cumulative hardware energy counter in joules
    (monotonic, wrap-corrected) where the hardware has one, else ``None``.
    """

    watts: float
    t: float
    scope: str
    source: str
    estimated: bool = False
    energy_j: float | None = None
    rails: Mapping[str, float] = field(default_factory=dict)



@runtime_checkable
class PowerSensor(Protocol):
    """A power source. ``read`` may raise :class:`SensorError`; callers that sit on the
    inference path use :class:`~edge_trt_ros.power.select.FallbackSensor`, which never
    raises."""

    @property
    def name(self) -> str:
        """Short sensor kind, e.g. ``ina3221-hwmon``."""
        ...

    @property
    def scope(self) -> str:
        """One of :class:`Scope`."""
        ...

    @property
    def source(self) -> str:
        """Exactly what is measured, e.g. ``ina3221-hwmon:VDD_IN``."""
        ...

    @property
    def estimated(self) -> bool:
        """True when the figure is modelled, not measured."""
        ...

    def read(self) -> PowerReading:
        """Sample power now."""
        ...

    def energy_j(self) -> float | None:
        """Cumulative energy counter in joules, or None when the hardware has none."""
        ...

    def close(self) -> None:
        """Release handles (NVML, jtop socket)."""
        ...
