"""Inference off the subscription callback: worker threads take the newest frame and run it.

The callback only leaves the frame in the :class:`~edge_trt_ros.runtime.mailbox.Mailbox`
(microseconds), so frames keep being received while an engine runs, a switch prepares,
or a service answers. Each worker leases the active engine per frame (its own detector when
there are several workers, on one shared engine where each runs single-threaded and the
engine allows it: one frame per core in parallel serves queued frames faster than one frame
spread over the cores; on a CPU each worker is pinned to cores of its own, see
:mod:`~edge_trt_ros.runtime.affinity`), and results leave in arrival order, per camera.
Several cameras share the pool: the mailbox keeps the newest frame of each and serves them
round-robin (several at once when the engine takes a batch: the frames waiting for other
cameras join the one a worker takes, one inference for all), each camera has its own
counters and result order
(:class:`~edge_trt_ros.runtime.streams.CameraStream`), and a camera nobody subscribes to
(``wanted`` false, the lazy mode) has its frames counted and let go in the callback, so
with no subscribers at all the workers sleep.
Nothing is built or loaded here; a frame costs a view (or a decode, for a compressed
camera), a letterbox, an engine run and a decode of the outputs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_trt_ros.detector import FrameTiming
from edge_trt_ros.errors import EngineError, ImageFormatError
from edge_trt_ros.runtime.affinity import pin_this_thread
from edge_trt_ros.runtime.counters import FAILED, REJECTED, REPLACED, FrameCounters
from edge_trt_ros.runtime.mailbox import Frame, Mailbox
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.streams import CameraStream
from edge_trt_ros.runtime.switcher import ActiveEngine, EngineSwitcher
from edge_trt_ros.runtime.throttle import Throttle
from edge_trt_ros.vision.decode import Detections
from edge_trt_ros.vision.image import ImageView
from edge_trt_ros.vision.letterbox import run_opencv_on_callers

log = logging.getLogger("edge_trt_ros.runtime.workers")


@dataclass(frozen=True)
class FrameResult:
    """A processed frame: what to publish, and what produced it."""

    frame: Frame
    detections: Detections
    engine: ActiveEngine
    timing: FrameTiming
    view: ImageView | None = None  # the pixels it ran on (for the debug image)
    convert_ms: float = math.nan  # the view or compressed decode, on the worker
    batch: int = 1  # frames (of different cameras) in the inference it ran in


class WorkerPool:
    """``switcher.workers`` threads between one mailbox and one result callback."""

    def __init__(self, switcher: EngineSwitcher, convert: Callable[[object], ImageView],
                 emit: Callable[[FrameResult], None], counters: FrameCounters,
                 window: FrameWindow, now_ns: Callable[[], int],
                 cores: tuple[frozenset[int], ...] = ()) -> None:
        """``cores``: worker i runs on ``cores[i]`` only (empty: wherever the kernel puts
        it); see :mod:`edge_trt_ros.runtime.affinity`."""
        self._switcher = switcher
        self._cores = cores
        self._convert = convert
        self._emit = emit
        self.counters = counters
        self.window = window
        self._now_ns = now_ns  # the clock image stamps are on (the node's ROS clock)
        self.streams: dict[str, CameraStream] = {}  # per camera (Frame.source)
        self._streams_lock = threading.Lock()
        # A frame is registered as in flight the moment it is taken, so a later frame of the
        # same camera that finishes first waits for it (results leave in arrival order).
        self.mailbox = Mailbox(on_take=self._begin)
        self._threads: list[threading.Thread] = []
        self._throttle = Throttle()

    def stream(self, key: str) -> CameraStream:
        """Camera ``key``'s state, made on first use (the node registers its cameras at
        configure; a frame from an unknown source gets a stream of its own)."""
        stream = self.streams.get(key)
        if stream is None:
            with self._streams_lock:
                stream = self.streams.get(key)
                if stream is None:
                    stream = CameraStream(key, self.window.window_s)
                    self.streams = {**self.streams, key: stream}  # readers never lock
        return stream

    def set_wanted(self, key: str, wanted: bool) -> None:
        """Lazy mode: whether anyone reads camera ``key``'s outputs (from the ROS layer)."""
        self.stream(key).wanted = wanted

    @property
    def idle_skipped(self) -> int:
        return sum(s.idle_skipped for s in self.streams.values())

    def _begin(self, frame: Frame) -> None:
        self.stream(frame.source).sequencer.begin(frame.seq)

    def submit(self, frame: Frame) -> None:
        """From the subscription callback: hand the frame over (unless nobody wants it),
        count the one it displaced."""
        stream = self.stream(frame.source)
        self.counters.received()
        if not stream.arrived():
            return  # lazy: nobody subscribes; not converted, not a drop
        if self.mailbox.put(frame) is not None:
            why = "a newer frame arrived before a worker was free"
            self.counters.dropped(REPLACED, why)
            stream.counters.dropped(REPLACED, why)

    def start(self) -> None:
        if self._threads:
            return
        self.mailbox.reopen()
        for stream in self.streams.values():
            stream.sequencer.reset()
        run_opencv_on_callers()  # the workers are the parallelism
        for i in range(self._switcher.workers):
            t = threading.Thread(target=self._run, args=(i,), name=f"edge-trt-worker-{i}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking frames, let running ones finish (and publish), join the threads."""
        for frame in self.mailbox.close():
            why = "the node stopped before a worker took it"
            self.counters.dropped(REPLACED, why)
            self.stream(frame.source).counters.dropped(REPLACED, why)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("worker %s did not stop within %.0f s (an engine call hangs?)",
                          t.name, timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _batch_limit(self) -> int:
        """Frames of different cameras one inference may take now: the active engine's
        max_batch (1 between configure and the first engine, or with batching off)."""
        try:
            return max(1, self._switcher.active.first.engine.max_batch)
        except EngineError:
            return 1

    def _run(self, index: int) -> None:
        if index < len(self._cores):
            pin_this_thread(self._cores[index])
        while True:
            frames = self.mailbox.take_batch(self._batch_limit(),
                                             share=self._switcher.workers)
            if not frames:
                return
            results: dict[int, FrameResult] = {}
            try:
                results = self._process(index, frames)
            finally:
                for frame in frames:
                    self.stream(frame.source).sequencer.done(frame.seq, results.get(frame.seq),
                                                             self._publish)

    def _convert_one(self, frame: Frame, stream: CameraStream) -> tuple[ImageView, float] | None:
        """The frame's pixels (a view, or a decode) and the ms that took, or None after
        counting it rejected."""
        t0 = time.perf_counter()
        try:
            view = self._convert(frame.payload)
        except Exception as exc:  # ImageFormatError, or a decoder's own: never kill a worker
            why = str(exc) if isinstance(exc, ImageFormatError) else \
                f"{type(exc).__name__}: {exc}"
            total = self.counters.dropped(REJECTED, why)
            stream.counters.dropped(REJECTED, why)
            if self._throttle.ready(REJECTED + frame.source):
                log.warning("dropping a frame from %s: %s (%d dropped so far)",
                            frame.source or "the camera", why, total)
            return None
        convert_ms = (time.perf_counter() - t0) * 1e3
        stream.converted(convert_ms)
        return view, convert_ms

    def _process(self, index: int, frames: list[Frame]) -> dict[int, FrameResult]:
        """Results by frame seq of the frames that ran (one inference for all of them when
        the engine takes the batch, else one each)."""
        ready: list[tuple[Frame, CameraStream, ImageView, float]] = []
        for frame in frames:
            stream = self.stream(frame.source)
            converted = self._convert_one(frame, stream)
            if converted is not None:
                ready.append((frame, stream, *converted))
        if not ready:
            return {}
        views = [view for _, _, view, _ in ready]
        try:
            with self._switcher.lease(index) as (engine, detector):
                batch = len(views) if len(views) <= detector.engine.max_batch else 1
                if batch == len(views):
                    found = detector.detect_batch(views)
                else:  # an engine swapped in meanwhile that takes fewer: one at a time
                    found = [detector.detect(view) for view in views]
                timing = detector.last_timing
        except Exception as exc:  # an engine fault must not take the robot's detector down
            why = f"{type(exc).__name__}: {exc}"
            for frame, stream, view, _ in ready:
                total = self.counters.dropped(FAILED, why)
                stream.counters.dropped(FAILED, why)
                if self._throttle.ready(FAILED + frame.source):
                    log.error("inference failed on a %dx%d frame from %s: %s (%d failed so "
                              "far)", view.width, view.height, frame.source or "the camera",
                              why, total)
            return {}
        results = {}
        for (frame, stream, view, convert_ms), detections in zip(ready, found, strict=True):
            if detections.nonfinite:
                self.counters.nonfinite(detections.nonfinite)
                stream.counters.nonfinite(detections.nonfinite)
                if self._throttle.ready("nonfinite"):
                    log.warning("the %s engine returned %d NaN/inf output rows on a frame "
                                "(numeric overflow; dropped, never published): switch to "
                                "fp32, or rebuild the variant (edge-trt variants measures "
                                "fp16 headroom)", engine.label, detections.nonfinite)
            results[frame.seq] = FrameResult(frame, detections, engine, timing, view,
                                             convert_ms, batch)
        return results

    def _publish(self, result: FrameResult) -> None:
        try:
            self._emit(result)
        except Exception as exc:  # e.g. the ROS context went away during shutdown
            if self._throttle.ready("emit" + result.frame.source):
                log.error("could not publish the detections of %s: %s: %s",
                          result.frame.source or "the camera", type(exc).__name__, exc)
            return
        self.counters.processed()
        stamp = result.frame.stamp_ns
        e2e_ms = (self._now_ns() - stamp) / 1e6 if stamp else float("nan")
        self.window.add(result.timing.inference_ms, e2e_ms)
        stream = self.stream(result.frame.source)
        stream.counters.processed()
        stream.published(result.batch)
        stream.window.add(result.timing.inference_ms, e2e_ms)
