"""The hand-over between the camera callbacks and the workers, and the order results leave in.

:class:`Mailbox` holds one waiting frame per camera: a robot wants the newest image, never a
queue of stale ones, so a frame no worker was free to take is replaced (and counted) when the
next one of the same camera arrives. Free workers serve the cameras round-robin, so every
camera gets its share of the engine: a camera publishing at 60 Hz cannot starve one at 5 Hz,
and a camera that stalls simply has nothing waiting.
:class:`Sequencer` lets several workers finish frames out of order while results still
leave in arrival order (downstream nodes may assume stamps only grow); there is one per
camera, so one camera's slow frame never holds back another camera's results.
"""

from __future__ import annotations

import math
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
    """A thread-safe hand-over where the newest frame of each camera wins.

    A frame is replaced only when it is still waiting for a worker as a newer one of the
    same camera (:attr:`Frame.source`) arrives and no worker is free: a frame that arrives
    while a worker waits is handed to that worker at once, so a burst of frames (DDS
    delivering two at once after a pause) is not mistaken for a backlog. Waiting frames of
    different cameras are taken round-robin, starting after the camera served last.
    """

    def __init__(self, on_take: Callable[[Frame], None] | None = None) -> None:
        self._on_take = on_take  # told each taken frame, under the lock (in take order)
        self._cond = threading.Condition()
        self._handed: deque[Frame] = deque()  # promised to waiting workers, oldest first
        self._slots: dict[str, Frame] = {}  # per camera: the one frame waiting for a busy pool
        self._order: list[str] = []  # cameras in the order first seen (the round-robin ring)
        self._next = 0  # where the next round-robin search starts in _order
        self._waiting = 0  # workers inside take()
        self._closed = False
        self._seq = 0

    @property
    def waiting(self) -> int:
        """Workers waiting for a frame now (idle)."""
        with self._cond:
            return self._waiting

    def put(self, frame: Frame) -> Frame | None:
        """Leave ``frame`` for a worker; returns the frame of the same camera it replaced,
        or ``frame`` itself once closed (it would wait, holding its image, until a reopen
        served it stale)."""
        with self._cond:
            if self._closed:
                return frame
            frame.seq = self._seq
            self._seq += 1
            self._cond.notify()
            if self._waiting > len(self._handed):
                self._handed.append(frame)
                return None
            if frame.source not in self._order:  # a handful of cameras: a list is enough
                self._order.append(frame.source)
            replaced = self._slots.get(frame.source)
            self._slots[frame.source] = frame
            return replaced

    def _next_waiting(self) -> Frame | None:
        """The waiting frame of the next camera in the ring that has one (lock held)."""
        count = len(self._order)
        for step in range(count):
            i = (self._next + step) % count
            frame = self._slots.pop(self._order[i], None)
            if frame is not None:
                self._next = (i + 1) % count
                return frame
        return None

    def take(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame promised to a worker, else the next camera's waiting one
        (waiting up to ``timeout``); None on timeout or when closed."""
        frames = self.take_batch(1, timeout)
        return frames[0] if frames else None

    def take_batch(self, limit: int, timeout: float | None = None, share: int = 1
                   ) -> list[Frame]:
        """What :meth:`take` gives, plus frames waiting for other cameras (round-robin),
        for one inference over several cameras: at most ``limit``, and of what waits only
        this taker's part when ``share`` workers serve the mailbox (a batch runs on one
        worker, so frames the others can run beside it are left to them); [] on timeout or
        when closed. It never waits for a second frame: a batch is what is there."""
        with self._cond:
            self._waiting += 1
            try:
                ready = self._cond.wait_for(
                    lambda: self._handed or self._slots or self._closed, timeout)
            finally:
                self._waiting -= 1
            if self._handed:
                frame: Frame | None = self._handed.popleft()
            elif not ready or self._closed:
                return []
            else:
                frame = self._next_waiting()
            frames = [] if frame is None else [frame]
            limit = min(limit, math.ceil((len(frames) + len(self._slots)) / max(1, share)))
            while 0 < len(frames) < limit and (frame := self._next_waiting()) is not None:
                frames.append(frame)
            if self._on_take is not None:
                for frame in frames:
                    self._on_take(frame)
            return frames

    def close(self) -> list[Frame]:
        """Wake every waiting worker for good; returns the frames left untaken."""
        with self._cond:
            self._closed = True
            left = [*self._handed, *self._slots.values()]
            self._handed.clear()
            self._slots.clear()
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
