"""Rolling throughput/latency figures over a time window (ROS-free, for the live topic).

End-to-end latency is "now on the node's clock minus the image stamp", so it is only as
good as the two clocks' agreement. A stamp from the future, or older than
:data:`MAX_PLAUSIBLE_AGE_MS`, says the clocks disagree (a camera without time sync, a
bag replayed without ``use_sim_time``), not that the pipeline took an hour: such frames
are counted as clock skew and left out of the latency percentiles.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

# Older than this is not a latency the node could have caused (its queue holds a frame or
# a few); a stamp ahead of the clock by more than MAX_FUTURE_MS is impossible.
MAX_PLAUSIBLE_AGE_MS = 10_000.0
MAX_FUTURE_MS = 0.0


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
    clock_skew_frames: int = 0  # in the window: stamps from the future or implausibly old
    clock_skew_total: int = 0  # since start
    last_skew_ms: float = float("nan")  # now - stamp of the last such frame


def is_clock_skew(end_to_end_ms: float) -> bool:
    """True when now - stamp cannot be a latency: the stamp is ahead of the clock, or older
    than :data:`MAX_PLAUSIBLE_AGE_MS`."""
    return end_to_end_ms < -MAX_FUTURE_MS or end_to_end_ms > MAX_PLAUSIBLE_AGE_MS


class FrameWindow:
    """Frames seen in the last ``window_s`` seconds of a monotonic clock (thread-safe: workers
    add, the status timer reads)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._frames: deque[tuple[float, float, float]] = deque()
        self._skews: deque[float] = deque()  # times of clock-skewed frames in the window
        self._skew_total = 0
        self._last_skew_ms = float("nan")
        self._lock = threading.Lock()

    def add(self, inference_ms: float, end_to_end_ms: float, now: float | None = None) -> None:
        """One answered frame; an end-to-end figure that :func:`is_clock_skew` is counted
        as skew and kept out of the latency percentiles (NaN: the frame had no stamp)."""
        now = time.monotonic() if now is None else now
        skewed = is_clock_skew(end_to_end_ms)  # False for NaN
        with self._lock:
            self._frames.append((now, inference_ms, float("nan") if skewed else end_to_end_ms))
            if skewed:
                self._skews.append(now)
                self._skew_total += 1
                self._last_skew_ms = end_to_end_ms
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._frames and now - self._frames[0][0] > self.window_s:
            self._frames.popleft()
        while self._skews and now - self._skews[0] > self.window_s:
            self._skews.popleft()

    def stats(self, now: float | None = None) -> WindowStats:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._frames)
            data = np.asarray(self._frames, dtype=np.float64) if n else None
            skew = (len(self._skews), self._skew_total, self._last_skew_ms)
        if data is None:
            nan = float("nan")
            return WindowStats(self.window_s, 0.0, nan, nan, nan, nan, nan, 0, *skew)
        inf = np.percentile(data[:, 1], [50, 95, 99])
        e2e = data[:, 2][~np.isnan(data[:, 2])]
        e2e_p = np.percentile(e2e, [50, 95]) if e2e.size else (float("nan"),) * 2
        span = now - data[0, 0]
        fps = (n - 1) / span if n > 1 and span > 0 else 0.0
        return WindowStats(
            self.window_s, fps, float(inf[0]), float(inf[1]), float(inf[2]),
            float(e2e_p[0]), float(e2e_p[1]), n, *skew,
        )
