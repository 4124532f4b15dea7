"""The adaptive controller the node holds: state, the efficiency table and the audit log
around the pure :func:`~edge_trt_ros.adaptive.decision.decide`.

The node calls, on its own thread (not thread-safe; one caller):

- :meth:`AdaptiveController.step` once per efficiency window (and whenever
  :meth:`guard_ok` says the light just put the running variant outside the guard); when
  the decision says ``switch`` it asks the runtime for ``decision.to_precision`` and
- reports the outcome with :meth:`switch_done`;
- :meth:`manual` for every operator switch (service or parameter), refused or not;
- :meth:`reconfigure` when an ``adaptive.*`` parameter changes; :meth:`close` at shutdown.

Every decision worth a record (a switch, or a change in what it reports), every manual,
forced or refused switch and, one window after each switch, the realised efficiency
(``followup``) go to the audit log before the call returns. When the log cannot be written
the call raises :class:`~edge_trt_ros.errors.AuditWriteError` after the state is updated;
``exc.decision`` is the decision, which still stands (act on it, report the error).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from edge_trt_ros.adaptive.audit import AuditLog
from edge_trt_ros.adaptive.config import ControllerConfig
from edge_trt_ros.adaptive.decision import (
    ControllerState,
    Decision,
    Expected,
    after,
    decide,
    refused,
    switched,
)
from edge_trt_ros.adaptive.guard import bins_near, check
from edge_trt_ros.adaptive.inputs import Inputs, LiveWindow
from edge_trt_ros.adaptive.table import EfficiencyTable
from edge_trt_ros.errors import AuditWriteError

log = logging.getLogger("edge_trt_ros.adaptive")
AUTO, MANUAL, FORCED = "auto", "manual", "forced"


@dataclass(frozen=True)
class _FollowUp:
    ref: int  # decision id (auto) or audit seq of the manual record
    mode: str
    variant: str
    since: float
    expected: Expected
    switch_ms: float


class AdaptiveController:
    """One detector's controller (see the module docstring for the calls)."""

    def __init__(self, config: ControllerConfig, table: EfficiencyTable, initial: str,
                 now: float, *, audit: AuditLog | None = None, forced: bool = False,
                 clock: str = "monotonic") -> None:
        """``now`` and every later time are seconds on one clock, named by ``clock`` in the
        start record (``monotonic``, or the node's ROS clock under simulated time)."""
        self.config = config.validate()
        self.table = table
        self.audit = audit
        self.state = ControllerState(initial, now, forced=forced)
        self.last: Decision | None = None
        self.decisions_recorded = 0
        self.audit_failures = 0
        self._followup: _FollowUp | None = None
        self._write("start", now, {"variant": initial, "forced": forced, "clock": clock,
                                   "config": config.to_dict(), "table": self._table_dict()})

    # -- per window ----------------------------------------------------------------------
    def step(self, inputs: Inputs, now: float) -> Decision:
        """Learn from the window, decide, record; returns the decision."""
        records: list[tuple[str, dict[str, Any]]] = []
        w = inputs.window
        if w is not None and self._settled(w):
            self.table.observe(w)
        follow = self._take_followup(w)
        if follow is not None:
            records.append(("followup", follow))
        decision = decide(self.config, self.table.rows(), inputs, self.state, now)
        self.state = after(self.state, decision)
        self.last = decision
        if decision.record:
            body = decision.to_dict()
            body["mode"] = AUTO
            body["inputs"] = inputs.to_dict()
            records.append(("decision", body))
            self.decisions_recorded += 1
            log.info("adaptive: %s", decision.summary())
        self._write_all(records, now, decision)
        return decision

    def _settled(self, w: LiveWindow) -> bool:
        """A window counts for the table only when it ran entirely on the current variant."""
        s = self.state
        return w.variant == s.current and w.start >= s.since and not s.pending

    def _take_followup(self, w: LiveWindow | None) -> dict[str, Any] | None:
        f = self._followup
        if f is None or w is None or w.start < f.since:
            return None  # no window begun after the switch yet
        if w.variant != f.variant:
            self._followup = None
            return {"ref": f.ref, "mode": f.mode, "variant": f.variant, "realised": None,
                    "expected": asdict(f.expected),
                    "note": f"{w.variant} was running before a full window of {f.variant}"}
        self._followup = None
        realised = {"fps": w.fps, "capacity_fps": w.capacity_fps, "power_w": w.power_w,
                    "mj_per_frame": w.energy_per_frame_mj, "frames": w.frames,
                    "window_s": w.end - w.start, "scope": w.scope, "estimated": w.estimated,
                    "inference_p50_ms": w.inference_p50_ms}
        err = {}
        for key, real in (("mj_per_frame", w.energy_per_frame_mj), ("fps", w.capacity_fps)):
            exp = getattr(f.expected, key)
            if exp and real is not None:
                err[f"{key}_error"] = round((real - exp) / exp, 4)
        return {"ref": f.ref, "mode": f.mode, "variant": f.variant, "switch_ms": f.switch_ms,
                "expected": asdict(f.expected), "realised": realised, **err}

    # -- outcomes and operator actions ----------------------------------------------------
    def switch_done(self, decision: Decision, success: bool, message: str, now: float,
                    switch_ms: float = 0.0) -> None:
        """The runtime's answer to ``decision`` (a switch)."""
        if success:
            self.state = switched(self.state, decision.to_variant, now)
            self._await(_FollowUp(decision.id, AUTO, decision.to_variant, now,
                                  decision.expected, switch_ms), now)
            return
        self.state = refused(self.state, decision.to_variant, now, message,
                             self.config.refused_retry_s)
        self._write("refusal", now, {
            "mode": AUTO, "decision_id": decision.id, "from": decision.from_variant,
            "to": decision.to_variant, "by": "runtime", "cause": "runtime", "reason": message,
            "retry_after_s": self.config.refused_retry_s})

    def manual(self, to: str, *, success: bool, forced: bool, message: str, now: float,
               reason: str = "switch_engine", guard_refusal: bool = False) -> None:
        """An operator switch (``~/switch_engine`` or a ``precision`` parameter): recorded
        as manual, forced (past the guard) or refused; a success restarts the dwell clock,
        and a forced one pauses automatic switching until a switch without force."""
        frm = self.state.current
        kind = "refusal" if not success else FORCED if forced else MANUAL
        mode = FORCED if forced else MANUAL
        body: dict[str, Any] = {"mode": mode, "from": frm, "to": to, "reason": reason,
                "message": message, "success": success,
                "cause": "guard" if guard_refusal else "" if success else "runtime",
                "accuracy": self._accuracy_dict(to)}
        expected = self._expected(to)
        if success:
            body["expected"] = asdict(expected)
            self.state = switched(self.state, to, now, forced=forced)
        seq = self._write(kind, now, body)
        if success:
            self._await(_FollowUp(seq or 0, mode, to, now, expected, 0.0), now)

    def reconfigure(self, config: ControllerConfig, now: float) -> None:
        """New settings (validated first; a bad one raises and changes nothing); the next
        decision may switch at once."""
        config.validate()
        if config == self.config:
            return
        old = self.config
        self.config = config
        self.state = replace(self.state, dwell_waived=True)
        changed = {k: v for k, v in config.to_dict().items() if old.to_dict()[k] != v}
        self._write("config", now, {"changed": changed, "config": config.to_dict()})

    def guard_ok(self, lux: float | None) -> bool:
        """Does the running variant pass the guard at ``lux``? (For the illuminance
        callback: if not, call :meth:`step` now rather than at the next window.)"""
        if self.state.forced:
            return True
        row = self.table.rows_by_name().get(self.state.current)
        if row is None:
            return False
        bins = bins_near(lux, self.config.lux_margin_decades)
        return check(row.accuracy, bins, self.config.max_accuracy_drop).passed

    def close(self, now: float) -> None:
        """Record where the shift ended (the audit summary's last interval) and close."""
        try:
            self._write("stop", now, {"variant": self.state.current,
                                      "decisions": self.state.decisions,
                                      "decisions_recorded": self.decisions_recorded,
                                      "table": self._table_dict()})
        finally:
            if self.audit is not None:
                self.audit.close()

    # -- helpers ------------------------------------------------------------------------
    def _await(self, follow: _FollowUp, now: float) -> None:
        """Expect ``follow``'s window; one still awaited is closed with a note, not dropped."""
        old, self._followup = self._followup, follow
        if old is not None:
            self._write("followup", now, {
                "ref": old.ref, "mode": old.mode, "variant": old.variant, "realised": None,
                "expected": asdict(old.expected),
                "note": f"switched again (to {follow.variant}) before a full window"})

    def _expected(self, name: str) -> Expected:
        row = self.table.rows_by_name().get(name)
        if row is None:
            return Expected(None, None, None, None, None, "unknown")
        f = row.figures
        return Expected(f.fps, f.power_w, f.mj_per_frame, row.accuracy.map50, None, f.source)

    def _accuracy_dict(self, name: str) -> dict[str, Any] | None:
        row = self.table.rows_by_name().get(name)
        return None if row is None else row.accuracy.to_dict()

    def _table_dict(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "precision": r.precision, "accuracy": r.accuracy.to_dict(),
                 "figures": r.figures.to_dict()} for r in self.table.rows()]

    def _write(self, kind: str, now: float, body: dict[str, Any]) -> int | None:
        if self.audit is None:
            return None
        try:
            return self.audit.append(kind, now, body)
        except AuditWriteError:
            self.audit_failures += 1
            raise

    def _write_all(self, records: list[tuple[str, dict[str, Any]]], now: float,
                   decision: Decision) -> None:
        failure: AuditWriteError | None = None
        for kind, body in records:
            try:
                self._write(kind, now, body)
            except AuditWriteError as exc:  # keep going: each record is held for the retry
                failure = exc
        if failure is not None:
            raise AuditWriteError(str(failure), pending=failure.pending,
                                  decision=decision) from failure
