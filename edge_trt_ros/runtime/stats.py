"""Rolling throughput/latency figures over a time window (ROS-free, for the live topic)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowStats:
    window_s: float
    fps: float
    inference_p50_ms: float
    inference_p95_ms: float
    inference_p99_ms: float
    end_to_end_p50_ms: float
    end_to_end_p95_ms: float
    frames: int


class FrameWindow:
    """Frames seen in the last ``window_s`` seconds of a monotonic clock (thread-safe: workers
    add, the status timer reads)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._frames: deque[tuple[float, float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, inference_ms: float, end_to_end_ms: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._frames.append((now, inference_ms, end_to_end_ms))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._frames and now - self._frames[0][0] > self.window_s:
            self._frames.popleft()

    def stats(self, now: float | None = None) -> WindowStats:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._frames)
            data = np.asarray(self._frames, dtype=np.float64) if n else None
        if data is None:
            nan = float("nan")
            return WindowStats(self.window_s, 0.0, nan, nan, nan, nan, nan, 0)
        inf = np.percentile(data[:, 1], [50, 95, 99])
        e2e = data[:, 2][~np.isnan(data[:, 2])]
        e2e_p = np.percentile(e2e, [50, 95]) if e2e.size else (float("nan"),) * 2
        span = now - data[0, 0]
        fps = (n - 1) / span if n > 1 and span > 0 else 0.0
        return WindowStats(
            self.window_s, fps, float(inf[0]), float(inf[1]), float(inf[2]),
            float(e2e_p[0]), float(e2e_p[1]), n,
        )
