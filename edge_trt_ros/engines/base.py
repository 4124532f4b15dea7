"""The engine interface every backend implements: load, infer, describe, release."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EngineInfo:
    """What is running, for logs, diagnostics and ~/get_engine_info."""

    backend: str
    backend_version: str
    precision: str
    fusion_profile: str
    device: str
    model_path: str
    engine_id: str
    settings: dict[str, str] = field(default_factory=dict)


class Engine(Protocol):
    """A loaded, ready-to-run network. Built/loaded off the hot path; ``infer`` only runs."""

    @property
    def info(self) -> EngineInfo: ...

    @property
    def concurrent(self) -> bool:
        """True when ``infer`` may run from several threads at once on this one engine, so
        workers share it (one load, one warm-up, one copy of the weights per switch)."""
        ...

    @property
    def max_batch(self) -> int:
        """How many frames one :meth:`infer` may carry (1: one frame per call)."""
        ...

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        """Run one batch; returns the model outputs in graph order."""
        ...

    def release(self) -> None:
        """Free sessions and device memory; the engine is unusable afterwards."""
        ...
