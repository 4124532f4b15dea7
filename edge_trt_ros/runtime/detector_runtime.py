"""The running detector without ROS: what the node wires to topics, parameters and services.

:class:`DetectorRuntime` owns the variant catalog, the engine switcher, the worker pool and
the counters. Built at configure (the first engine is opened, never between frames); frames
go in through :meth:`frame` from any thread; results come out through the ``emit`` callback
on a worker thread; :meth:`request` (or :meth:`submit`, which returns at once) switches
precision / fusion profile while frames flow. Several cameras share it: a frame's ``source``
names its camera, and :meth:`camera` gives that camera's counters, figures and lazy switch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_trt_ros.choices import AUTO
from edge_trt_ros.detector import Detector
from edge_trt_ros.engines.registry import Capabilities, capabilities, resolve_backend
from edge_trt_ros.engines.spec import EngineSpec
from edge_trt_ros.errors import EdgeTrtError, NotBatchable
from edge_trt_ros.runtime.affinity import allowed_cores, placement, worker_cores
from edge_trt_ros.runtime.counters import FrameCounters
from edge_trt_ros.runtime.mailbox import Frame
from edge_trt_ros.runtime.ready import every_pair, parse_keep_ready
from edge_trt_ros.runtime.selection import Fp16Missing, Plan, SwitchRefused, plan_engine
from edge_trt_ros.runtime.stats import FrameWindow
from edge_trt_ros.runtime.streams import CameraStream
from edge_trt_ros.runtime.switcher import ActiveEngine, EngineSwitcher
from edge_trt_ros.runtime.workers import FrameResult, WorkerPool
from edge_trt_ros.variants.catalog import Catalog, default_variants_dir
from edge_trt_ros.vision.decode import DecodeParams
from edge_trt_ros.vision.image import ImageView

log = logging.getLogger("edge_trt_ros.runtime")
MAX_AUTO_WORKERS = 4  # engines kept in memory at once; more cores rarely pay for the RAM


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edge_trt_ros/engines`` (``~/.cache/...``): plans and made variants."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge_trt_ros" / "engines"


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything the runtime is configured with (the node's restart-only parameters)."""

    model_path: str
    backend: str = AUTO  # auto | onnxruntime | tensorrt
    device: str = AUTO  # auto | cpu | cuda:N
    precision: str = "fp32"
    fusion_profile: str = "max"
    intra_op_threads: int = 0  # 0 = all cores for one worker, cores/workers for several
    workers: int = 0  # 0 = auto: one worker per core on a CPU (at most 4), one on a GPU
    pin_workers: bool = True  # CPU workers on cores of their own (runtime/affinity.py)
    engine_cache_dir: str = ""  # "" = default_cache_dir()
    variants_dir: str = ""  # "" = beside the shipped model, or per model in the cache
    shipped_model: str = ""  # the package's own model (its variants ship beside it)
    class_names: tuple[str, ...] = ()
    output_layout: str = "auto"
    decode: DecodeParams = field(default_factory=lambda: DecodeParams(0.25, 0.45, 100))
    max_accuracy_drop: float = 0.005
    hardware_fusion_default: str = "max"
    stats_window_s: float = 5.0
    max_batch: int = 1  # >1: frames of up to this many cameras run as one inference
    keep_ready: tuple[str, ...] = ()  # engines kept open for instant switches (ready.py)

    def cache_dir(self) -> Path:
        return Path(self.engine_cache_dir) if self.engine_cache_dir else default_cache_dir()

    def catalog_dir(self) -> Path:
        if self.variants_dir:
            return Path(self.variants_dir)
        return default_variants_dir(self.model_path, self.cache_dir(),
                                    self.shipped_model or None)

    def worker_cores(self, device_kind: str) -> tuple[frozenset[int], ...]:
        """Each CPU worker's cores when ``pin_workers`` (empty: not pinned)."""
        if not self.pin_workers or device_kind != "cpu":
            return ()
        return worker_cores(self.workers_for(device_kind)[0], allowed_cores())

    def workers_for(self, device_kind: str) -> tuple[int, int]:
        """(workers, intra-op threads per engine) on a ``cpu`` or ``cuda`` device.

        Auto on a CPU: one worker per core (at most MAX_AUTO_WORKERS), the cores shared out
        as intra-op threads (one each up to MAX_AUTO_WORKERS cores; single-threaded workers
        share one engine where it runs frames concurrently): queued frames then run side by
        side, which serves more frames than one engine spread over
        the cores (whose threads wait for each other, and for anything else the machine
        runs), and a slow frame (a switch being prepared) holds up one worker, not all.
        On a GPU one engine: the device runs one stream's kernels at a time anyway."""
        cores = os.cpu_count() or 1
        workers = self.workers or (min(cores, MAX_AUTO_WORKERS) if device_kind == "cpu" else 1)
        if self.intra_op_threads or workers == 1:
            return workers, self.intra_op_threads
        return workers, max(1, cores // workers)


@dataclass(frozen=True)
class SwitchOutcome:
    success: bool
    message: str
    precision: str
    fusion_profile: str
    switch_ms: float = 0.0


def base_spec(config: RuntimeConfig,
              caps: Capabilities | None = None) -> tuple[EngineSpec, int, str]:
    """(the spec before a variant is chosen, the number of workers, why this backend)."""
    backend, device, why = resolve_backend(config.backend, config.device, caps)
    workers, threads = config.workers_for(device.partition(":")[0])
    spec = EngineSpec(backend, config.model_path, device=device, intra_op_threads=threads,
                      cache_dir=str(config.cache_dir()), max_batch=config.max_batch)
    return spec, workers, why


def plan_for(config: RuntimeConfig, precision: str, fusion_profile: str, *,
             force: bool = False, catalog: Catalog | None = None) -> Plan:
    """Check a request against this machine, the catalog and the guard (no engine opened)."""
    caps = capabilities()
    try:
        base, _, _ = base_spec(config, caps)
        catalog = catalog or Catalog(config.model_path, config.catalog_dir())
    except (EdgeTrtError, OSError) as exc:
        raise SwitchRefused(str(exc)) from exc
    return plan_engine(catalog, base, precision, fusion_profile,
                       hardware_fusion_default=config.hardware_fusion_default,
                       max_accuracy_drop=config.max_accuracy_drop, force=force,
                       capabilities=caps)


class DetectorRuntime:
    """Catalog + switcher + workers + counters for one configured detector."""

    def __init__(self, config: RuntimeConfig, convert: Callable[[object], ImageView],
                 emit: Callable[[FrameResult], None], now_ns: Callable[[], int]) -> None:
        self.config = config
        self.capabilities = capabilities()
        self.base, self.workers, self.backend_reason = base_spec(config, self.capabilities)
        config.cache_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        self.catalog = Catalog(config.model_path, config.catalog_dir())
        self.max_accuracy_drop = config.max_accuracy_drop
        self.counters = FrameCounters(config.stats_window_s)
        self.window = FrameWindow(config.stats_window_s)
        self.switcher = EngineSwitcher(self._open_detector, self.workers, config.decode)
        self.cores = config.worker_cores(self.base.device_kind)
        self.pool = WorkerPool(self.switcher, convert, emit, self.counters, self.window, now_ns,
                               cores=self.cores)
        self._history_lock = threading.Lock()
        self._control = ThreadPoolExecutor(1, thread_name_prefix="edge-trt-switch")
        self.last_switch: SwitchOutcome | None = None
        self.last_refusal_time: float | None = None  # monotonic
        try:
            keep = parse_keep_ready(config.keep_ready)
        except ValueError as exc:
            raise SwitchRefused(str(exc)) from exc
        plan = self._plan(config.precision, config.fusion_profile, force=False)
        ms = self.switcher.start(plan.spec, plan.variant)
        for note in plan.notes:
            log.warning("%s", note)
        log.info("engine %s (%s, %s on %s, %d worker(s) x %s thread(s), %s) ready in %.0f ms; "
                 "backend %s", self.active.label, plan.spec.precision, plan.spec.backend,
                 plan.spec.device, self.workers, plan.spec.intra_op_threads or "all",
                 placement(self.cores), ms, self.backend_reason)
        try:
            self._keep_ready(keep)
        except BaseException:
            self.switcher.close()
            raise

    def _keep_ready(self, pairs: tuple[tuple[str, str], ...] | None) -> None:
        """Open the ``keep_ready`` engines. A pair named that cannot run (or fails to open)
        fails configure with the reason; with ``all``, pairs that cannot run are skipped
        and listed."""
        named = pairs is not None
        skipped: list[str] = []
        t0 = time.perf_counter()
        for precision, profile in every_pair() if pairs is None else pairs:
            try:
                plan = self._plan(precision, profile, force=False)
                self.switcher.keep_ready(plan.spec, plan.variant)
            except Exception as exc:
                why = str(exc) if isinstance(exc, SwitchRefused) else \
                    f"opening it failed ({type(exc).__name__}: {exc})"
                if named:
                    raise SwitchRefused(f"keep_ready {precision}/{profile}: {why}") from exc
                skipped.append(f"{precision}/{profile} ({why})")
        kept = self.ready_labels()
        if kept:
            log.info("kept ready for instant switches: %s (%d engine(s) open, %.0f ms)",
                     ", ".join(kept), len(kept), (time.perf_counter() - t0) * 1e3)
        if skipped:
            log.warning("keep_ready all: not kept (a switch to one is planned and opened when "
                        "asked, as without keep_ready): %s", "; ".join(skipped))

    def ready_labels(self) -> list[str]:
        """'precision/profile' of every engine ``keep_ready`` keeps open (the active one
        too when it is one of them)."""
        return sorted(f"{s.precision}/{s.fusion_profile}" for s in self.switcher.kept)

    def _open_detector(self, spec: EngineSpec, decode: DecodeParams) -> Detector:
        """The detector of ``spec``; one that cannot batch frames of several cameras is
        opened for one frame at a time instead, saying why (the cameras then take turns)."""
        def open_one(spec: EngineSpec) -> Detector:
            return Detector.from_spec(spec, decode, class_names=list(self.config.class_names)
                                      or None, output_layout=self.config.output_layout)
        try:
            return open_one(spec)
        except NotBatchable as exc:
            log.warning("batching off for %s/%s: %s; the cameras take turns on the engine, "
                        "one frame per inference", spec.precision, spec.fusion_profile, exc)
            return open_one(replace(spec, max_batch=1))

    def _plan(self, precision: str, fusion_profile: str, force: bool,
              make_fp16: bool = True, guard_bins: Sequence[str] | None = None) -> Plan:
        return plan_engine(self.catalog, self.base, precision, fusion_profile,
                           hardware_fusion_default=self.config.hardware_fusion_default,
                           max_accuracy_drop=self.max_accuracy_drop, force=force,
                           capabilities=self.capabilities, make_fp16=make_fp16,
                           guard_bins=guard_bins)

    @property
    def active(self) -> ActiveEngine:
        return self.switcher.active

    # -- frames -------------------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()

    def frame(self, payload: object, stamp_ns: int, source: str = "") -> None:
        """A frame of camera ``source`` in (from any thread; returns at once)."""
        self.pool.submit(Frame(payload, stamp_ns, source))

    def camera(self, key: str) -> CameraStream:
        """Camera ``key``'s counters, rolling figures and lazy switch (made on first use)."""
        return self.pool.stream(key)

    # -- control ------------------------------------------------------------------------------
    def validate(self, precision: str = "", fusion_profile: str = "",
                 force: bool = False) -> str | None:
        """Why the request would be refused, or None: everything knowable without opening
        the engine (backend, device, variant file and hash, the guard). Fast: no file is
        made or loaded, so a parameter callback can call it."""
        active = self.active
        try:
            self._plan(precision or active.spec.precision,
                       fusion_profile or active.spec.fusion_profile, force, make_fp16=False)
        except Fp16Missing:
            return None
        except SwitchRefused as exc:
            return str(exc)
        return None

    def submit(self, precision: str = "", fusion_profile: str = "", *, force: bool = False,
               reason: str = "request",
               guard_bins: Sequence[str] | None = None) -> Future[SwitchOutcome]:
        """:meth:`request` on the switch thread: returns at once, the future completes with
        the outcome. Requests run one after another in submission order. When no thread can
        be started for the switch (out of memory, a thread limit) the future is already
        done with a refusal: raising here would end the caller (a ROS callback)."""
        try:
            return self._control.submit(self.request, precision, fusion_profile, force=force,
                                        reason=reason, guard_bins=guard_bins)
        except RuntimeError as exc:
            outcome = self._refused(f"cannot start the switch ({exc}: out of memory or "
                                    f"threads?); still running {self.active.label}", reason)
            with self._history_lock:
                self.last_switch = outcome
            done: Future[SwitchOutcome] = Future()
            done.set_result(outcome)
            return done

    def request(self, precision: str = "", fusion_profile: str = "", *, force: bool = False,
                reason: str = "request",
                guard_bins: Sequence[str] | None = None) -> SwitchOutcome:
        """Switch to (precision, fusion_profile) ('' keeps the current one); never raises.

        ``guard_bins`` narrows the accuracy guard to where the robot is now (the adaptive
        controller passes the lux bins of the current light); None = every bin.
        Serialized with every other request; the outcome says why a refusal happened and
        the running engine is untouched then."""
        active = self.active
        precision = precision or active.spec.precision
        fusion_profile = fusion_profile or active.spec.fusion_profile
        try:
            plan = self._plan(precision, fusion_profile, force, guard_bins=guard_bins)
            if plan.spec == active.spec:
                outcome = SwitchOutcome(True, f"already running {active.label}",
                                        plan.spec.precision, plan.spec.fusion_profile)
            else:
                label = "forced " + reason if plan.forced else reason
                kept = " (kept ready)" if plan.spec in self.switcher.kept else ""
                ms = self.switcher.switch(plan.spec, plan.variant, reason=label,
                                          forced=plan.forced)
                for note in plan.notes:
                    log.warning("%s", note)
                outcome = SwitchOutcome(True, "; ".join(
                    [f"switched to {self.active.label} in {ms:.0f} ms{kept}", *plan.notes]),
                    plan.spec.precision, plan.spec.fusion_profile, ms)
        except SwitchRefused as exc:
            outcome = self._refused(str(exc), reason)
        except Exception as exc:  # building/loading the new engine failed: keep the old one
            outcome = self._refused(f"preparing {precision}/{fusion_profile} failed "
                                    f"({type(exc).__name__}: {exc}); still running "
                                    f"{self.active.label}", reason)
        with self._history_lock:
            self.last_switch = outcome
        return outcome

    def _refused(self, why: str, reason: str) -> SwitchOutcome:
        active = self.active
        self.last_refusal_time = time.monotonic()
        log.warning("switch refused (%s): %s", reason, why)
        return SwitchOutcome(False, why, active.spec.precision, active.spec.fusion_profile)

    def update_decode(self, **changes: float | int) -> DecodeParams:
        return self.switcher.update_decode(**changes)

    def describe_variants(self) -> list[dict[str, Any]]:
        """Every variant of the catalog, whether this backend/device runs it, and its
        accuracy (for ``~/get_engine_info``)."""
        out = []
        picks = self.catalog.available(self.base.backend, self.base.device_kind)
        for v in self.catalog.variants.values():
            entry = v.describe()
            served = picks.get(v.precision)
            entry["runs_here"] = served is not None and served.name == v.name
            entry["reason"] = "" if entry["runs_here"] else (
                f"{self.base.backend} on {self.base.device} serves {v.precision} with "
                f"{served.name}" if served else f"no {v.precision} for {self.base.backend}")
            out.append(entry)
        return out

    def close(self) -> None:
        """Finish the switch in progress, stop the workers and release every engine."""
        self._control.shutdown(wait=True, cancel_futures=True)
        self.pool.stop()
        self.switcher.close()
