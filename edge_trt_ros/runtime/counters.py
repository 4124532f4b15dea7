"""Frame counters by outcome, and the recent problems the status reports.

Totals never reset (``frames_received`` on the efficiency topic is a lifetime count);
problems are also kept with their time so a status can say "3 frames failed in the last
5 s" and return to OK once the stream is healthy again, instead of staying at ERROR forever
after one bad frame.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

# Why a received frame was not answered.
REPLACED = "replaced"  # a newer frame took its place before a worker was free
REJECTED = "rejected"  # the node could not interpret it (encoding, size, buffer)
FAILED = "failed"  # the engine failed on it
DROP_REASONS = (REPLACED, REJECTED, FAILED)
NONFINITE = "nonfinite"  # answered, but the engine returned NaN/inf rows (dropped from it)


@dataclass(frozen=True)
class CounterSnapshot:
    received: int
    processed: int
    dropped: dict[str, int]  # by reason
    recent: dict[str, int]  # problems within the window, by reason (and NONFINITE)
    last_reason: dict[str, str]  # the last message per reason
    window_s: float
    nonfinite_frames: int = 0  # frames whose engine output had NaN/inf rows

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class FrameCounters:
    """Thread-safe: the subscription callback and the workers count into one object."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._received = 0
        self._processed = 0
        self._dropped: Counter[str] = Counter()
        self._last: dict[str, str] = {}
        self._events: deque[tuple[float, str]] = deque()
        self._nonfinite = 0

    def received(self) -> None:
        with self._lock:
            self._received += 1

    def processed(self) -> None:
        with self._lock:
            self._processed += 1

    def dropped(self, reason: str, message: str = "", now: float | None = None) -> int:
        """Count a dropped frame; returns the total dropped for that reason."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._dropped[reason] += 1
            if message:
                self._last[reason] = message
            self._events.append((now, reason))
            self._trim(now)
            return self._dropped[reason]

    def nonfinite(self, rows: int, now: float | None = None) -> None:
        """A frame answered without the NaN/inf rows its engine returned."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._nonfinite += 1
            self._last[NONFINITE] = f"{rows} output rows were NaN/inf"
            self._events.append((now, NONFINITE))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window_s:
            self._events.popleft()

    def snapshot(self, now: float | None = None) -> CounterSnapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            recent = Counter(reason for _, reason in self._events)
            return CounterSnapshot(self._received, self._processed,
                                   {r: self._dropped[r] for r in DROP_REASONS},
                                   {r: recent[r] for r in (*DROP_REASONS, NONFINITE)},
                                   dict(self._last), self.window_s, self._nonfinite)
