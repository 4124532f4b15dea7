"""Inference off the subscription callback: worker threads take the newest frame and run it.

The callback only leaves the frame in the :class:`~edge_trt_ros.runtime.mailbox.Mailbox`
(microseconds), so the executor keeps receiving while an engine runs, a switch prepares,
or a service answers. Each worker leases the active engine per frame (its own detector when
there are several workers: one single-threaded session per core serves queued frames
faster than one session spread over the cores), and results leave in arrival order.
Nothing is built or loaded here; a frame costs a view, a letterbox, an engine run and a
decode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_trt_ros.detector import FrameTiming
from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.runtime.counters import FAILED, REJECTED, REPLACED, FrameCounters
from edge_trt_ros.runtime.mailbox import Frame, Mailbox, Sequencer
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.switcher import ActiveEngine, EngineSwitcher
from edge_trt_ros.vision.decode import Detections
from edge_trt_ros.vision.image import ImageView

log = logging.getLogger("edge_trt_ros.runtime.workers")
LOG_EVERY_S = 5.0  # at most one log line per problem kind this often (a bad stream is loud)


@dataclass(frozen=True)
class FrameResult:
    """A processed frame: what to publish, and what produced it."""

    frame: Frame
    detections: Detections
    engine: ActiveEngine
    timing: FrameTiming


class _Throttle:
    def __init__(self, period_s: float) -> None:
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


class WorkerPool:
    """``switcher.workers`` threads between one mailbox and one result callback."""

    def __init__(self, switcher: EngineSwitcher, convert: Callable[[object], ImageView],
                 emit: Callable[[FrameResult], None], counters: FrameCounters,
                 window: FrameWindow, now_ns: Callable[[], int]) -> None:
        self._switcher = switcher
        self._convert = convert
        self._emit = emit
        self.counters = counters
        self.window = window
        self._now_ns = now_ns  # the clock image stamps are on (the node's ROS clock)
        self._sequencer: Sequencer[FrameResult] = Sequencer()
        # A frame is registered as in flight the moment it is taken, so a later frame that
        # finishes first waits for it (results leave in arrival order).
        self.mailbox = Mailbox(on_take=self._sequencer.begin)
        self._threads: list[threading.Thread] = []
        self._throttle = _Throttle(LOG_EVERY_S)

    def submit(self, frame: Frame) -> None:
        """From the subscription callback: hand the frame over, count the one it displaced."""
        self.counters.received()
        if self.mailbox.put(frame) is not None:
            self.counters.dropped(REPLACED, "a newer frame arrived before a worker was free")

    def start(self) -> None:
        if self._threads:
            return
        self.mailbox.reopen()
        self._sequencer.reset()
        for i in range(self._switcher.workers):
            t = threading.Thread(target=self._run, args=(i,), name=f"edge-trt-worker-{i}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking frames, let running ones finish (and publish), join the threads."""
        for _ in self.mailbox.close():
            self.counters.dropped(REPLACED, "the node stopped before a worker took it")
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("worker %s did not stop within %.0f s (an engine call hangs?)",
                          t.name, timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _run(self, index: int) -> None:
        while True:
            frame = self.mailbox.take()
            if frame is None:
                return
            result: FrameResult | None = None
            try:
                result = self._process(index, frame)
            finally:
                self._sequencer.done(frame.seq, result, self._publish)

    def _process(self, index: int, frame: Frame) -> FrameResult | None:
        try:
            view = self._convert(frame.payload)
        except ImageFormatError as exc:
            total = self.counters.dropped(REJECTED, str(exc))
            if self._throttle.ready(REJECTED):
                log.warning("dropping a frame from %s: %s (%d dropped so far)",
                            frame.source or "the camera", exc, total)
            return None
        try:
            with self._switcher.lease(index) as (engine, detector):
                found = detector.detect(view)
                timing = detector.last_timing
        except Exception as exc:  # an engine fault must not take the robot's detector down
            total = self.counters.dropped(FAILED, f"{type(exc).__name__}: {exc}")
            if self._throttle.ready(FAILED):
                log.error("inference failed on a %dx%d frame: %s (%d failed so far)",
                          view.width, view.height, exc, total)
            return None
        if found.nonfinite:
            self.counters.nonfinite(found.nonfinite)
            if self._throttle.ready("nonfinite"):
                log.warning("the %s engine returned %d NaN/inf output rows on a frame (numeric "
                            "overflow; dropped, never published): switch to fp32, or rebuild "
                            "the variant (edge-trt variants measures fp16 headroom)",
                            engine.label, found.nonfinite)
        return FrameResult(frame, found, engine, timing)

    def _publish(self, result: FrameResult) -> None:
        try:
            self._emit(result)
        except Exception as exc:  # e.g. the ROS context went away during shutdown
            if self._throttle.ready("emit"):
                log.error("could not publish detections: %s", exc)
            return
        self.counters.processed()
        stamp = result.frame.stamp_ns
        e2e_ms = (self._now_ns() - stamp) / 1e6 if stamp else float("nan")
        self.window.add(result.timing.inference_ms, e2e_ms)
