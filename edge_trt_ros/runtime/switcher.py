"""Engine switches between two frames: prepare off the hot path, swap, release after use.

A switch opens the new engine (a cache load, a session, or a TensorRT build; one for all
workers when the engine runs frames concurrently, as ONNX Runtime's CPU session does, else
one per worker) and runs one warm-up frame on each while the workers keep serving frames on
the old engine; only then is the active engine replaced, in one reference assignment. The
old engine is released when the last frame that started on it has finished, so no frame is
dropped or cut short by a switch. Requests are serialized: each is applied or refused
before the next one starts (arrival order); a refused or failed switch leaves the running
engine untouched.

Engines kept ready (:meth:`EngineSwitcher.keep_ready`, the node's ``keep_ready``) are
prepared once and stay open beside the active one, active or not: a switch to one is the
reference assignment alone, no open and no warm-up next to the workers. Memory for speed:
each costs what an open engine costs (about 25 MB resident for the shipped model's ONNX
Runtime CPU session), so the robot keeps the few it switches between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import EngineError
from edge_trt_ros.variants.catalog import Variant
from edge_trt_ros.vision.decode import DecodeParams

log = logging.getLogger("edge_trt_ros.runtime.switcher")

OpenDetector = Callable[[EngineSpec, DecodeParams], Detector]
PREPARE_NICE = 10  # how far below the workers a switch's preparation runs (CPU engines)


def yield_to_workers(spec: EngineSpec) -> None:
    """Prepare engines below the workers' priority: on a CPU the workers use every core,
    and an engine being opened and warmed up next to them delays their frames until the
    one-slot mailbox replaces one. Only for a switch thread (never the main thread) and a
    single-threaded CPU engine: niceness is inherited by threads created here, and an
    intra-op pool made now would run inference at the lower priority for good. Raising
    niceness needs no privilege; it is never lowered again (that would), which is why it
    applies to the switch thread only. Where the OS refuses, nothing changes."""
    if threading.current_thread() is threading.main_thread():
        return
    if spec.device_kind != "cpu" or spec.intra_op_threads != 1 or PREPARE_NICE <= 0:
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + PREPARE_NICE)
        if current < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except (AttributeError, OSError):  # not Linux, or not allowed
        pass


@dataclass(frozen=True)
class ActiveEngine:
    """What serves frames now: one detector per worker, all on the same spec (sharing one
    engine where it runs frames concurrently)."""

    spec: EngineSpec
    variant: Variant
    detectors: tuple[Detector, ...]
    reason: str  # why it became active (configure, a service call, a parameter, forced)
    forced: bool = False

    @property
    def label(self) -> str:
        return f"{self.variant.name}/{self.spec.fusion_profile}"

    @property
    def first(self) -> Detector:
        return self.detectors[0]


class _Slot:
    """An engine plus the frames running on it, so it is released only when they finish
    (an engine kept ready keeps its slot, active or not, and is retired at close)."""

    def __init__(self, engine: ActiveEngine) -> None:
        self.engine = engine
        self.inflight = 0
        self.retired = False


def warm_up(detector: Detector) -> None:
    """One frame through the whole pipeline: the first run allocates (and, on a GPU, may
    compile kernels), and a broken engine fails here rather than on a camera frame."""
    h, w = detector.info.input_hw
    detector.detect(np.zeros((h, w, 3), np.uint8))


class EngineSwitcher:
    """Holds the active engine; workers lease it per frame, switches replace it."""

    def __init__(self, open_detector: OpenDetector, workers: int, decode: DecodeParams) -> None:
        if workers < 1:
            raise ValueError("need at least one worker")
        self._open = open_detector
        self.workers = workers
        self._decode = decode
        self._lock = threading.Lock()  # guards _slot, inflight counts and _decode
        self._switching = threading.Lock()  # serializes whole switches
        self._slot: _Slot | None = None
        self._keep: set[EngineSpec] = set()  # specs whose engines stay open
        self._ready: dict[EngineSpec, _Slot] = {}  # kept engines not active now

    @property
    def active(self) -> ActiveEngine:
        slot = self._slot
        if slot is None:
            raise EngineError("no engine loaded (the node is not configured)")
        return slot.engine

    @property
    def decode(self) -> DecodeParams:
        return self._decode

    @property
    def kept(self) -> tuple[EngineSpec, ...]:
        """The specs kept ready (the active engine's among them if it is one)."""
        with self._lock:
            return tuple(self._keep)

    def keep_ready(self, spec: EngineSpec, variant: Variant) -> float:
        """Prepare ``spec`` now (if it is not open already) and keep it open from now on,
        so a switch to it only swaps; returns the milliseconds taken. Raises what opening
        raised, keeping nothing then."""
        with self._switching:
            t0 = time.perf_counter()
            slot = self._slot
            if spec not in self._ready and not (slot is not None and slot.engine.spec == spec):
                engine = self._prepare(spec, variant, "kept ready", False)
                with self._lock:
                    self._ready[spec] = _Slot(engine)
            with self._lock:
                self._keep.add(spec)
            return (time.perf_counter() - t0) * 1e3

    def _prepare(self, spec: EngineSpec, variant: Variant, reason: str,
                 forced: bool) -> ActiveEngine:
        yield_to_workers(spec)
        detectors: list[Detector] = []
        try:
            while len(detectors) < self.workers:
                if detectors and detectors[0].engine.concurrent:
                    detectors.append(detectors[0].share())
                    continue
                detector = self._open(spec, self._decode)
                detectors.append(detector)
                warm_up(detector)
        except BaseException:
            for d in detectors:
                d.release()
            raise
        return ActiveEngine(spec, variant, tuple(detectors), reason, forced)

    def start(self, spec: EngineSpec, variant: Variant, reason: str = "configured") -> float:
        """Open the first engine (at configure); returns milliseconds taken."""
        return self.switch(spec, variant, reason=reason)

    def switch(self, spec: EngineSpec, variant: Variant, *, reason: str,
               forced: bool = False) -> float:
        """Prepare ``spec`` and make it active; returns the milliseconds from request to swap.

        Raises whatever opening the engine raised (EngineError and friends); the running
        engine is untouched then."""
        with self._switching:
            t0 = time.perf_counter()
            with self._lock:
                active = self._slot
                if active is not None and active.engine.spec == spec:  # nothing to swap
                    active.engine = replace(active.engine, reason=reason, forced=forced)
                    return (time.perf_counter() - t0) * 1e3
                slot = self._ready.pop(spec, None)
            if slot is None:
                slot = _Slot(self._prepare(spec, variant, reason, forced))
                how = "prepared"
            else:
                how = "kept ready"
            with self._lock:
                new = slot.engine = replace(slot.engine, variant=variant, reason=reason,
                                            forced=forced)
                for d in new.detectors:  # thresholds changed while it was prepared or kept
                    d.params = self._decode
                old, self._slot = self._slot, slot
                if old is not None and old.engine.spec in self._keep:
                    self._ready[old.engine.spec] = old
                elif old is not None:
                    old.retired = True
                release_now = old is not None and old.retired and old.inflight == 0
            elapsed_ms = (time.perf_counter() - t0) * 1e3
            if old is not None and release_now:
                self._release(old.engine)
            if old is not None:
                log.info("engine %s -> %s in %.0f ms (%s; %s)", old.engine.label, new.label,
                         elapsed_ms, reason, how)
            return elapsed_ms

    @contextlib.contextmanager
    def lease(self, worker: int) -> Iterator[tuple[ActiveEngine, Detector]]:
        """The engine one frame runs on; a switch waits for the lease to end before it
        releases that engine."""
        with self._lock:
            slot = self._slot
            if slot is None:
                raise EngineError("no engine loaded (the node is not configured)")
            slot.inflight += 1
        try:
            yield slot.engine, slot.engine.detectors[worker % len(slot.engine.detectors)]
        finally:
            with self._lock:
                slot.inflight -= 1
                release = slot.retired and slot.inflight == 0
            if release:
                self._release(slot.engine)

    def update_decode(self, **changes: float | int) -> DecodeParams:
        """New thresholds for the next frame on every detector (and on engines prepared
        later)."""
        with self._lock:
            self._decode = replace(self._decode, **changes)  # type: ignore[arg-type]
            if self._slot is not None:
                for d in self._slot.engine.detectors:
                    d.params = self._decode
            return self._decode

    def close(self) -> None:
        """Release the active engine and those kept ready (each after its in-flight
        frames); no engine afterwards."""
        with self._switching, self._lock:
            slots = [*self._ready.values(), *([self._slot] if self._slot else [])]
            self._slot = None
            self._ready.clear()
            self._keep.clear()
            idle = []
            for slot in slots:
                slot.retired = True
                if slot.inflight == 0:
                    idle.append(slot)
        for slot in idle:
            self._release(slot.engine)

    @staticmethod
    def _release(engine: ActiveEngine) -> None:
        for d in engine.detectors:
            d.release()
