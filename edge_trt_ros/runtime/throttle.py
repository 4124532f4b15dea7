"""At most one log line per problem and source this often: a bad stream at 30 fps must not
flood the robot's log, while the counters still count every frame."""

from __future__ import annotations

import threading
import time

LOG_EVERY_S = 5.0


class Throttle:
    """``ready(key)`` is True at most once per ``period_s`` for each key (thread-safe)."""

    def __init__(self, period_s: float = LOG_EVERY_S) -> None:
        self._period = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < self._period:
                return False
            self._last[key] = now
            return True
