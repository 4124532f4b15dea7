"""The adaptive controller wired to the node: its parameters, sensor topics, timer and log.

Everything the controller decides is in :mod:`edge_trt_ros.adaptive`; this module only
turns ROS inputs (``battery_state``, ``illuminance``, ``temperature``, the frame window and
power meter) into its :class:`~edge_trt_ros.adaptive.inputs.Inputs`, hands its switches to
the runtime, and reports. Every controller call happens on the executor's thread: a switch's
outcome arrives on the switch thread and waits in a queue for the next timer tick.

Two clocks. The controller's own times (dwell, light hold, staleness of a reading, the
audit's ``t_mono``) are on the node's clock when it runs on simulated time
(``use_sim_time`` with a ``/clock`` publisher, e.g. a shift replayed faster than real time)
and on the monotonic clock otherwise (the ROS clock is the system clock then, which can
jump). Measurements are always real: a frame window is ``stats_window_s`` seconds of the
steady clock, so the timer that steps the controller once per window is a steady timer,
and each window's start is mapped onto the controller's clock.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import BatteryState, Illuminance, Temperature

from edge_trt_ros.adaptive.audit import AuditLog
from edge_trt_ros.adaptive.config import ControllerConfig
from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.decision import Decision
from edge_trt_ros.adaptive.guard import bins_near
from edge_trt_ros.adaptive.health import adaptive_health
from edge_trt_ros.adaptive.inputs import (
    Battery,
    Inputs,
    Light,
    LiveWindow,
    Thermal,
    throttle_threshold,
)
from edge_trt_ros.adaptive.table import EfficiencyTable
from edge_trt_ros.errors import AdaptiveConfigError, AuditWriteError
from edge_trt_ros.power.live import LivePower
from edge_trt_ros.runtime.detector_runtime import DetectorRuntime, SwitchOutcome
from edge_trt_ros.runtime.health import Health

log = logging.getLogger("edge_trt_ros.ros.adaptive")
PARAMS = {"adaptive.objective": "objective", "adaptive.target_fps": "target_fps",
          "adaptive.power_budget_w": "power_budget_w",
          "adaptive.max_accuracy_drop": "max_accuracy_drop",
          "adaptive.min_dwell_s": "min_dwell_s"}
TICK_S = 0.5  # how often switch outcomes are collected (steady clock)
CLOCK_MAP_LEN = 1300  # (steady, controller) pairs kept: > the longest stats window / TICK_S


def default_audit_path(node_name: str) -> Path:
    """``$XDG_STATE_HOME/edge_trt_ros/<node>_audit.jsonl`` (``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "edge_trt_ros" / f"{node_name}_audit.jsonl"


class AdaptiveWiring:
    """Built once with the node; holds a controller between configure and cleanup."""

    def __init__(self, node: LifecycleNode) -> None:
        self.node = node
        self.controller: AdaptiveController | None = None
        self.runtime: DetectorRuntime | None = None
        self.power: LivePower | None = None
        self.audit_error = ""
        self._battery: Battery | None = None
        self._light: Light | None = None
        self._temperature: tuple[float, float] | None = None  # (celsius, t)
        self._outcomes: queue.SimpleQueue[tuple[Decision, SwitchOutcome]] = queue.SimpleQueue()
        self._manual: queue.SimpleQueue[tuple[SwitchOutcome, bool, str, str]] = \
            queue.SimpleQueue()
        self._pending: Decision | None = None
        self._audit: AuditLog | None = None  # opened, waiting for simulated time to start
        self._audit_path = ""
        self._sim = self._sim_time()
        self._clock_map: deque[tuple[float, float]] = deque(maxlen=CLOCK_MAP_LEN)
        self._last_step = time.monotonic()  # steady: one step per window of real frames
        self._last_received: tuple[int, float] | None = None  # (frames, steady time)
        node.create_subscription(BatteryState, "battery_state", self._on_battery,
                                 qos_profile_sensor_data)
        node.create_subscription(Illuminance, "illuminance", self._on_light,
                                 qos_profile_sensor_data)
        node.create_subscription(Temperature, "temperature", self._on_temperature,
                                 qos_profile_sensor_data)
        node.create_timer(TICK_S, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # -- clocks -------------------------------------------------------------------------
    def _sim_time(self) -> bool:
        return bool(getattr(self.node.get_clock(), "ros_time_is_active", False))

    def now(self) -> float:
        """The controller's clock, in seconds: ROS time under ``use_sim_time`` (fixed when
        the controller starts), else monotonic."""
        if self._sim:
            return self.node.get_clock().now().nanoseconds / 1e9
        return time.monotonic()

    @property
    def clock_name(self) -> str:
        return "ros (use_sim_time)" if self._sim else "monotonic"

    def _at(self, steady: float, steady_now: float, now: float) -> float:
        """The controller's time at an earlier steady time: exact on the monotonic clock;
        under simulated time the last tick at or before it (never later than the truth, so
        a window is never taken as begun after a switch it straddles)."""
        if not self._sim:
            return now - (steady_now - steady)
        best = None
        for s, c in self._clock_map:
            if s > steady:
                break
            best = c
        if best is None:  # nothing that old: the node has not run that long
            best = self._clock_map[0][1] if self._clock_map else now
        return min(best, now)

    @property
    def enabled(self) -> bool:
        return bool(self.node.get_parameter("adaptive.enabled").value)

    def config(self, overrides: dict[str, Any] | None = None) -> ControllerConfig:
        values = {field: self.node.get_parameter(name).value for name, field in PARAMS.items()}
        for name, value in (overrides or {}).items():
            if name in PARAMS:
                values[PARAMS[name]] = value
        return ControllerConfig(**values)

    # -- lifecycle ------------------------------------------------------------------------
    def configure(self, runtime: DetectorRuntime, power: LivePower) -> None:
        """Remember the configured runtime; start the controller if it is enabled (raises
        OSError when its audit log cannot be opened: the log is mandatory)."""
        self.runtime, self.power = runtime, power
        if self.enabled:
            self.start()

    def start(self) -> None:
        """Open the audit log (OSError here fails configure) and make the controller; on
        simulated time that has not started yet (no ``/clock`` received: ROS time 0) the
        controller is made at the first tick with a time, so its dwell clock does not
        begin at 0."""
        path = self.node.get_parameter("adaptive.audit_log_path").value or str(
            default_audit_path(self.node.get_name()))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._audit_path, self._audit = path, AuditLog(path)
        sim = self._sim_time()
        if sim != self._sim:  # readings stamped on the other clock mean nothing now
            self._sim, self._battery, self._light, self._temperature = sim, None, None, None
            self._clock_map.clear()
        if self._sim and self.now() <= 0.0:
            log.info("adaptive controller waits for /clock (use_sim_time) before it starts")
            return
        self._make_controller()

    def _make_controller(self) -> None:
        runtime, audit = self.runtime, self._audit
        assert runtime is not None and audit is not None
        self._audit = None
        table = EfficiencyTable.from_catalog(runtime.catalog, runtime.base.backend,
                                             runtime.base.device_kind)
        self.controller = AdaptiveController(
            self.config(), table, runtime.active.variant.name, self.now(),
            audit=audit, forced=runtime.active.forced, clock=self.clock_name)
        self._last_step = time.monotonic()  # its first decision comes one full window later
        log.info("adaptive controller %s (objective %s, %s clock), audit log %s",
                 "on" if self.enabled else "off", self.controller.config.objective,
                 self.clock_name, self._audit_path)

    def release(self) -> None:
        if self._audit is not None:  # opened, the controller never started
            self._audit.close()
            self._audit = None
        if self.controller is not None:
            try:
                self.controller.close(self.now())
            except AuditWriteError as exc:
                log.error("audit log: the stop record was not written: %s", exc)
        self.controller = self.runtime = self.power = None

    # -- parameters and operator switches ---------------------------------------------------
    def validate(self, values: dict[str, Any]) -> str | None:
        """Why these ``adaptive.*`` values would be refused, or None; changes nothing."""
        if not any(k in PARAMS for k in values):
            return None
        try:
            self.config(values).validate()
        except AdaptiveConfigError as exc:
            return str(exc)
        return None

    def apply(self, values: dict[str, Any]) -> str | None:
        """Apply validated ``adaptive.*`` values; why it failed (the audit log cannot be
        opened when the controller starts), or None."""
        if not any(k in PARAMS or k == "adaptive.enabled" for k in values):
            return None
        config = self.config(values).validate()
        if self.controller is not None:
            try:
                self.controller.reconfigure(config, self.now())
            except AuditWriteError as exc:
                self._audit_failed(exc)
        elif values.get("adaptive.enabled") and self.runtime is not None \
                and self._audit is None:
            try:
                self.start()
            except OSError as exc:
                return f"cannot open the audit log (it is mandatory): {exc}"
        return None

    def manual(self, outcome: SwitchOutcome, *, forced: bool, reason: str,
               requested: str) -> None:
        """Record an operator switch (service or parameter), refused or not; from any thread
        (recorded at the next tick, on the executor's thread)."""
        self._manual.put((outcome, forced, reason, requested))

    def _record_manual(self, outcome: SwitchOutcome, forced: bool, reason: str,
                       requested: str) -> None:
        if self.controller is None or self.runtime is None:
            return
        to = self.runtime.active.variant.name if outcome.success else requested
        try:
            self.controller.manual(to, success=outcome.success, forced=forced,
                                   message=outcome.message, now=self.now(),
                                   reason=reason,
                                   guard_refusal="accuracy guard" in outcome.message)
        except AuditWriteError as exc:
            self._audit_failed(exc)

    # -- inputs ---------------------------------------------------------------------------
    def _on_battery(self, msg: BatteryState) -> None:
        if math.isfinite(msg.percentage):
            charging = msg.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_CHARGING
            self._battery = Battery(100.0 * msg.percentage, charging, self.now())

    def _on_temperature(self, msg: Temperature) -> None:
        if math.isfinite(msg.temperature):
            self._temperature = (float(msg.temperature), self.now())

    def _on_light(self, msg: Illuminance) -> None:
        if not math.isfinite(msg.illuminance):
            return
        self._light = Light(float(msg.illuminance), self.now())
        c = self.controller
        if c is not None and self._active() and not c.guard_ok(self._light.lux):
            self._step("illuminance")  # out of the guard now: do not wait for the window

    def guard_bins(self) -> tuple[str, ...] | None:
        """The bins the guard applies in now (the current light), None when off/unknown."""
        c, light = self.controller, self._light
        if c is None or not self.enabled or light is None:
            return None
        if self.now() - light.t > c.config.stale_s:
            return None
        return bins_near(light.lux, c.config.lux_margin_decades)

    def _inputs(self, now: float, steady: float) -> Inputs:
        """The inputs at controller time ``now`` (steady time ``steady``): rates per real
        second, the window's start mapped onto the controller's clock."""
        runtime, power = self.runtime, self.power
        assert runtime is not None and self.controller is not None
        stats = runtime.window.stats()
        counters = runtime.counters.snapshot()
        input_fps = math.nan
        wanted = counters.received - runtime.pool.idle_skipped  # frames someone reads
        if self._last_received is not None and steady > self._last_received[1]:
            input_fps = (wanted - self._last_received[0]) / (steady - self._last_received[1])
        self._last_received = (wanted, steady)
        figures = power.figures() if power is not None else None
        e = figures.efficiency if figures is not None else None
        active = runtime.active
        window = LiveWindow(
            variant=active.variant.name, start=self._at(steady - stats.window_s, steady, now),
            end=now,
            frames=stats.frames, fps=stats.fps, inference_p50_ms=stats.inference_p50_ms,
            inference_p95_ms=stats.inference_p95_ms, workers=len(active.detectors),
            input_fps=input_fps, power_w=e.mean_watts if e else None,
            energy_per_frame_mj=e.energy_per_frame_mj if e else None,
            scope=e.scope if e else "", estimated=e.estimated if e else True)
        thermal = None
        if figures is not None:
            status = figures.thermal
            limit, source = throttle_threshold(
                power.detection.profile if power is not None else None, status)
            celsius = status.max_celsius
            if self._temperature is not None and now - self._temperature[1] <= \
                    self.controller.config.stale_s:
                celsius = self._temperature[0] if celsius is None else max(
                    celsius, self._temperature[0])
            thermal = Thermal(celsius, status.throttling, limit, now, source)
        return Inputs(window=window, thermal=thermal, battery=self._battery, light=self._light,
                      input_fps=input_fps if math.isfinite(input_fps) else None)

    # -- deciding -------------------------------------------------------------------------
    def _active(self) -> bool:
        return getattr(self.node, "state", "") == "active" and self.runtime is not None

    def _tick(self) -> None:
        if self._sim and self.now() > 0.0:  # ROS time 0: no /clock received yet
            self._clock_map.append((time.monotonic(), self.now()))
            if self._audit is not None and self.runtime is not None:
                self._make_controller()
        self._collect()
        self._retry_audit()
        if self.controller is None or not self._active() or not self.enabled:
            return
        window_s = float(self.node.get_parameter("stats_window_s").value)
        if time.monotonic() - self._last_step >= window_s:
            self._step("window")

    def _step(self, why: str) -> None:
        c, runtime = self.controller, self.runtime
        if c is None or runtime is None or not self.enabled or self._pending is not None:
            return
        now, steady = self.now(), time.monotonic()
        self._last_step = steady
        try:
            decision = c.step(replace(self._inputs(now, steady), extra={"called_by": why}), now)
        except AuditWriteError as exc:
            self._audit_failed(exc)
            if not isinstance(exc.decision, Decision):
                return
            decision = exc.decision
        else:
            self._audit_ok()
        if decision.switch:
            self._pending = decision
            future = runtime.submit(decision.to_precision,
                                    reason=f"adaptive: {decision.reason}",
                                    guard_bins=self.guard_bins())

            def done(f: Future[SwitchOutcome], d: Decision = decision) -> None:
                self._outcomes.put((d, f.result()))

            future.add_done_callback(done)

    def _collect(self) -> None:
        """Switch outcomes, on the executor thread: tell the controller, show the parameter."""
        while True:
            try:
                manual = self._manual.get_nowait()
            except queue.Empty:
                break
            self._record_manual(*manual)
        while True:
            try:
                decision, outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            self._pending = None
            if self.controller is not None:
                try:
                    self.controller.switch_done(decision, outcome.success, outcome.message,
                                                self.now(), outcome.switch_ms)
                except AuditWriteError as exc:
                    self._audit_failed(exc)
            sync = getattr(self.node, "sync_parameters", None)
            if outcome.success and sync is not None:
                sync(outcome.precision, outcome.fusion_profile)

    def _audit_ok(self) -> None:
        """A step's writes worked: after a failure, say once that the held records are out."""
        audit = self.controller.audit if self.controller is not None else None
        if self.audit_error and audit is not None and not audit.pending:
            log.warning("audit log %s can be written again: the held records are written",
                        audit.path)
        self.audit_error = ""

    def _audit_failed(self, exc: AuditWriteError) -> None:
        self.audit_error = str(exc)
        log.error("audit log write failed: %s (records are held and retried; the decision "
                  "stands)", exc)

    def _retry_audit(self) -> None:
        """Write held records as soon as the log can be written again: a controller in a
        steady state may record nothing for hours, and /diagnostics stays ERROR meanwhile."""
        audit = self.controller.audit if self.controller is not None else None
        if audit is None or not audit.pending:
            return
        try:
            written = audit.flush()
        except AuditWriteError as exc:
            self.audit_error = str(exc)  # still failing; logged when it began
            return
        self.audit_error = ""
        log.warning("audit log %s can be written again: %d held record(s) written",
                    audit.path, written)

    # -- status ---------------------------------------------------------------------------
    def mode(self) -> str:
        c = self.controller
        return c.config.objective if (c is not None and self.enabled) else "off"

    def last_decision(self) -> str:
        c = self.controller
        return c.last.summary() if c is not None and c.last is not None else ""

    def health(self) -> Health:
        return adaptive_health(self.controller, self.enabled, self.audit_error)
