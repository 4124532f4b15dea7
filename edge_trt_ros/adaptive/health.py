"""What the node's /diagnostics say about the adaptive controller, decided without ROS.

ERROR while audit records cannot be written (the log is mandatory); WARN when no variant
meets every constraint (the ``unmet`` report), when a forced variant holds automatic
switching, or when the light put the running variant outside the guard (it is moving);
OK otherwise, with the last decision's one-line summary.
"""

from __future__ import annotations

from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.runtime.health import ERROR, OK, WARN, Health

NAME = "adaptive controller"


def adaptive_health(controller: AdaptiveController | None, enabled: bool,
                    audit_error: str = "") -> Health:
    """The status for ``controller`` (``audit_error``: the last AuditWriteError's text)."""
    if not enabled or controller is None:
        return Health(NAME, OK, "off: the engine changes only on request", {"mode": "off"})
    state, d, audit = controller.state, controller.last, controller.audit
    values = {
        "mode": controller.config.objective, "variant": state.current,
        "modes": ",".join(d.modes) if d else "",
        "last_decision": d.summary() if d else "none yet",
        "decisions_recorded": str(controller.decisions_recorded),
        "audit_log": str(audit.path) if audit else "none",
        "audit_pending": str(audit.pending if audit else 0),
        "audit_failures": str(controller.audit_failures),
    }
    if audit is not None and (audit.pending or audit_error):
        return Health(NAME, ERROR, f"audit log {audit.path} cannot be written "
                      f"({audit.pending} record(s) held): {audit_error or 'see the log'}",
                      values)
    if d is None:
        return Health(NAME, OK, f"{controller.config.objective}: no decision yet", values)
    if d.unmet:
        return Health(NAME, WARN, f"no variant meets every constraint: {'; '.join(d.unmet)}; "
                      f"running {d.to_variant}, the most accurate that passes the guard", values)
    if state.forced:
        return Health(NAME, WARN, f"{state.current} forced by the operator: automatic "
                      "switching paused", values)
    if d.guard_violation:
        return Health(NAME, WARN, d.summary(), values)
    return Health(NAME, OK, d.summary(), values)
