"""Per-camera state of the running detector: counters, rolling figures, demand and order.

One node serves several cameras on one engine. Each camera keeps its own counters
(received, processed, dropped by reason, idle skips), its own rolling fps/latency window and
its own result order, so /diagnostics can say which camera is healthy, idle or stalled, and
one camera's trouble never shows up as another's. ``wanted`` is the lazy switch: while
nobody reads a camera's outputs its frames are counted and let go before any conversion.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_trt_ros.runtime.counters import CounterSnapshot, FrameCounters
from edge_trt_ros.runtime.mailbox import Sequencer
from edge_trt_ros.runtime.stats import FrameWindow, WindowStats

IDLE_NO_SUBSCRIBERS = "idle: no subscribers"


@dataclass(frozen=True)
class StreamSnapshot:
    """One camera's figures at one instant (for the status and the tests)."""

    key: str
    counters: CounterSnapshot
    stats: WindowStats
    idle_skipped: int  # frames let go unconverted because nobody subscribed (not drops)
    wanted: bool
    last_arrival_age_s: float  # since the last frame arrived (inf: never)
    convert_ms_p50: float  # view or decode on the worker, recent frames (NaN before any)
    batched: int = 0  # frames published that ran in one inference with other cameras' frames


class CameraStream:
    """Thread-safe: the camera callback counts arrivals, workers count outcomes."""

    def __init__(self, key: str, window_s: float) -> None:
        self.key = key
        self.counters = FrameCounters(window_s)
        self.window = FrameWindow(window_s)
        self.sequencer: Sequencer[Any] = Sequencer()
        self.wanted = True  # someone reads this camera's outputs (always, without lazy)
        self._lock = threading.Lock()
        self._idle = 0
        self._last_arrival = -math.inf
        self._convert_ms: deque[float] = deque(maxlen=64)
        self._batched = 0

    def arrived(self) -> bool:
        """Count an arriving frame; True when it should be processed (someone wants it)."""
        self.counters.received()
        with self._lock:
            self._last_arrival = time.monotonic()
            if not self.wanted:
                self._idle += 1
                return False
        return True

    def converted(self, ms: float) -> None:
        self._convert_ms.append(ms)

    def published(self, batch: int) -> None:
        """A result left; ``batch``: how many frames its inference ran."""
        if batch > 1:
            with self._lock:
                self._batched += 1

    @property
    def idle_skipped(self) -> int:
        with self._lock:
            return self._idle

    def snapshot(self, now: float | None = None) -> StreamSnapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            idle, last, batched = self._idle, self._last_arrival, self._batched
        recent = list(self._convert_ms)
        return StreamSnapshot(self.key, self.counters.snapshot(now), self.window.stats(now),
                              idle, self.wanted, now - last,
                              float(np.median(recent)) if recent else math.nan, batched)
