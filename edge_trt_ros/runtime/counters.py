"""Frame counters by outcome, and the recent problems the status reports.

Outcomes include frames that never reached the node: a camera at 100 Hz into a queue of
depth 1 loses most frames inside the middleware, and only the publishers' sequence
numbers (:class:`SequenceGaps`) show it.

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

# Why a frame the camera published was not answered.
REPLACED = "replaced"  # a newer frame took its place before a worker was free
REJECTED = "rejected"  # the node could not interpret it (encoding, size, buffer)
FAILED = "failed"  # the engine failed on it
LOST = "lost"  # published but never reached the callback (subscription queue, network)
DROP_REASONS = (REPLACED, REJECTED, FAILED, LOST)
NONFINITE = "nonfinite"  # answered, but the engine returned NaN/inf rows (dropped from it)

# How frames lost before the callback are known (:attr:`CounterSnapshot.lost_tracking`).
LOST_PER_PUBLISHER = "publisher sequence numbers"
LOST_UNSUPPORTED_RMW = "not counted: the RMW reports no publication sequence numbers"
LOST_UNSUPPORTED_RCLPY = "not counted: this rclpy passes no message info to callbacks"
LOST_SEVERAL_PUBLISHERS = ("not counted: several publishers on the topic and the RMW "
                           "reports no publisher id")


@dataclass(frozen=True)
class CounterSnapshot:
    received: int
    processed: int
    dropped: dict[str, int]  # by reason
    recent: dict[str, int]  # problems within the window, by reason (and NONFINITE)
    last_reason: dict[str, str]  # the last message per reason
    window_s: float
    nonfinite_frames: int = 0  # frames whose engine output had NaN/inf rows
    lost_tracking: str = ""  # how LOST is known (LOST_* above); "" before any frame

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
        self._events: deque[tuple[float, str, int]] = deque()
        self._nonfinite = 0
        self.lost_tracking = ""

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
            self._events.append((now, reason, 1))
            self._trim(now)
            return self._dropped[reason]

    def lost(self, frames: int, message: str = "", now: float | None = None) -> int:
        """Count ``frames`` published but never delivered to the callback; returns the
        total lost so far."""
        if frames <= 0:
            return self._dropped[LOST]
        now = time.monotonic() if now is None else now
        with self._lock:
            self._dropped[LOST] += frames
            if message:
                self._last[LOST] = message
            self._events.append((now, LOST, frames))
            self._trim(now)
            return self._dropped[LOST]

    def nonfinite(self, rows: int, now: float | None = None) -> None:
        """A frame answered without the NaN/inf rows its engine returned."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._nonfinite += 1
            self._last[NONFINITE] = f"{rows} output rows were NaN/inf"
            self._events.append((now, NONFINITE, 1))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window_s:
            self._events.popleft()

    def snapshot(self, now: float | None = None) -> CounterSnapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            recent: Counter[str] = Counter()
            for _, reason, count in self._events:
                recent[reason] += count
            return CounterSnapshot(self._received, self._processed,
                                   {r: self._dropped[r] for r in DROP_REASONS},
                                   {r: recent[r] for r in (*DROP_REASONS, NONFINITE)},
                                   dict(self._last), self.window_s, self._nonfinite,
                                   self.lost_tracking)


class SequenceGaps:
    """Frames lost before the subscription callback, from each publisher's publication
    sequence numbers (rclpy's MessageInfo, where the RMW reports them).

    The first frame of a publisher only starts its count (what it sent before the node
    subscribed is not a loss). A number at or below the last one is a restarted publisher,
    not a loss. Without a publisher id (``publisher`` None) two publishers' numbers would
    interleave into false gaps, so the caller says whether the topic has one publisher.
    Numbers are kept per ``stream`` (the camera), so two cameras' anonymous publishers never
    mix. The subscription callbacks (one thread) observe; :meth:`forget` may come from
    another (a camera resubscribed from the node's executor), hence the lock.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, object], int] = {}
        self._lock = threading.Lock()

    def observe(self, publisher: object, sequence: int | None,
                single_publisher: bool = True, stream: str = "") -> int | None:
        """Frames missing before this one (0 or more), or None when this frame cannot tell
        (no sequence number, or an anonymous publisher among several on its topic)."""
        if sequence is None or sequence <= 0:  # 0: rmw's "unsupported"
            return None
        key = (stream, publisher)
        with self._lock:
            if publisher is None and not single_publisher:
                self._last.pop(key, None)
                return None
            last = self._last.get(key)
            self._last[key] = sequence
        if last is None or sequence <= last:
            return 0
        return sequence - last - 1

    def forget(self) -> None:
        """A new subscription (reactivation): earlier numbers say nothing about it."""
        with self._lock:
            self._last.clear()
