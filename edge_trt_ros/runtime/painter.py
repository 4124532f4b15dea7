"""Debug images off the workers' path: one thread draws, the newest result per camera wins.

A worker only leaves its result here (microseconds) after publishing the detections; the
drawing (a copy of the frame, boxes, text, a message) runs on this thread, so a debug
viewer never slows the detector, and a viewer slower than the camera sees the newest frame,
not a queue of old ones. Frames it had no time for are counted, not drawn.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

from edge_trt_ros.runtime.mailbox import Frame, Mailbox
from edge_trt_ros.runtime.throttle import Throttle

T = TypeVar("T")
log = logging.getLogger("edge_trt_ros.runtime.painter")


class Painter(Generic[T]):
    """Calls ``render(camera, item)`` on its own thread for the newest item of each camera."""

    def __init__(self, render: Callable[[str, T], None]) -> None:
        self._render = render
        self._mailbox = Mailbox()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.drawn: Counter[str] = Counter()  # per camera
        self.skipped: Counter[str] = Counter()  # replaced by a newer one before drawing
        self.failed: Counter[str] = Counter()  # the renderer raised
        self._throttle = Throttle()

    def offer(self, camera: str, item: T) -> None:
        """From a worker: leave ``item`` to be drawn (replaces that camera's waiting one)."""
        if self._mailbox.put(Frame(item, 0, camera)) is not None:
            with self._lock:
                self.skipped[camera] += 1

    def start(self) -> None:
        if self._thread is not None:
            return
        self._mailbox.reopen()
        self._thread = threading.Thread(target=self._run, name="edge-trt-debug-image",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._mailbox.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while (frame := self._mailbox.take()) is not None:
            try:
                self._render(frame.source, frame.payload)  # type: ignore[arg-type]
            except Exception as exc:  # a debug image must never take the detector down
                with self._lock:
                    self.failed[frame.source] += 1
                    total = self.failed[frame.source]
                if self._throttle.ready(frame.source):
                    log.error("could not draw the debug image of camera %s: %s: %s (%d "
                              "failed so far; detections are unaffected)", frame.source,
                              type(exc).__name__, exc, total)
                continue
            with self._lock:
                self.drawn[frame.source] += 1
