"""The hand-over between the camera callback and the workers, and the order results leave in.

:class:`Mailbox` holds one waiting frame: a robot wants the newest image, never a queue of
stale ones, so a frame no worker was free to take is replaced (and counted) when the next
arrives.
:class:`Sequencer` lets several workers finish frames out of order while results still
leave in arrival order (downstream nodes may assume stamps only grow).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

T = TypeVar("T")


@dataclass
class Frame:
    """One camera message on its way through the pipeline."""

    payload: object  # the message itself: the image view points into its buffer
    stamp_ns: int  # the image header's stamp (0 = unset)
    source: str = ""  # which camera
    seq: int = field(default=-1)  # arrival order, set by the mailbox


class Mailbox:
    """A thread-safe hand-over where the newest frame wins.

    A frame is replaced only when it is still waiting for a worker as a newer one arrives
    and no worker is free: a frame that arrives while a worker waits is handed to that
    worker at once, so a burst of frames (DDS delivering two at once after a pause) is not
    mistaken for a backlog.
    """

    def __init__(self, on_take: Callable[[int], None] | None = None) -> None:
        self._on_take = on_take  # told each taken frame's seq, under the lock (in order)
        self._cond = threading.Condition()
        self._handed: deque[Frame] = deque()  # promised to waiting workers, oldest first
        self._frame: Frame | None = None  # the one frame waiting for a busy pool
        self._waiting = 0  # workers inside take()
        self._closed = False
        self._seq = 0

    @property
    def waiting(self) -> int:
        """Workers waiting for a frame now (idle)."""
        with self._cond:
            return self._waiting

    def put(self, frame: Frame) -> Frame | None:
        """Leave ``frame`` for a worker; returns the frame it replaced, if any."""
        with self._cond:
            frame.seq = self._seq
            self._seq += 1
            self._cond.notify()
            if self._waiting > len(self._handed):
                self._handed.append(frame)
                return None
            replaced, self._frame = self._frame, frame
            return replaced

    def take(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame promised to a worker, else the waiting one (waiting up to
        ``timeout``); None on timeout or when closed."""
        with self._cond:
            self._waiting += 1
            try:
                ready = self._cond.wait_for(
                    lambda: self._handed or self._frame is not None or self._closed, timeout)
            finally:
                self._waiting -= 1
            if self._handed:
                frame: Frame | None = self._handed.popleft()
            elif not ready or self._closed:
                return None
            else:
                frame, self._frame = self._frame, None
            if frame is not None and self._on_take is not None:
                self._on_take(frame.seq)
            return frame

    def close(self) -> list[Frame]:
        """Wake every waiting worker for good; returns the frames left untaken."""
        with self._cond:
            self._closed = True
            left = [*self._handed, *([self._frame] if self._frame else [])]
            self._handed.clear()
            self._frame = None
            self._cond.notify_all()
            return left

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


class Sequencer(Generic[T]):
    """Releases results in arrival order; a frame that yields no result releases nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, object] = {}  # seq -> result, _IN_FLIGHT or _NOTHING

    def begin(self, seq: int) -> None:
        """A worker took frame ``seq``: results of later frames wait for it."""
        with self._lock:
            self._pending[seq] = _IN_FLIGHT

    def done(self, seq: int, result: T | None, emit: Callable[[T], None]) -> None:
        """Record ``seq``'s result (None = nothing to emit) and emit what is now in order.

        Emitting happens under the lock so two workers cannot interleave their releases; the
        callback only converts and publishes."""
        with self._lock:
            self._pending[seq] = _NOTHING if result is None else result
            while self._pending:
                first = min(self._pending)
                value = self._pending[first]
                if value is _IN_FLIGHT:
                    break
                del self._pending[first]
                if value is not _NOTHING:
                    emit(cast(T, value))

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()


_IN_FLIGHT = object()
_NOTHING = object()
