"""The adaptive efficiency controller, without ROS (layer 3).

- :mod:`~edge_trt_ros.adaptive.decision`: one decision as a pure function of the inputs,
  the controller's state and the time, returned with its trigger, reason line and candidate
  table;
- :mod:`~edge_trt_ros.adaptive.guard`: the lighting-aware accuracy guard;
- :mod:`~edge_trt_ros.adaptive.table`: per-variant efficiency on this device, learnt from
  live windows (seeded or prior until measured);
- :mod:`~edge_trt_ros.adaptive.controller`: the stateful object the node holds (state,
  table, audit log, follow-ups);
- :mod:`~edge_trt_ros.adaptive.audit` / :mod:`~edge_trt_ros.adaptive.summary`: the
  append-only audit log and what ``edge-trt audit`` makes of it;
- :mod:`~edge_trt_ros.adaptive.shift` / :mod:`~edge_trt_ros.adaptive.replay`: a scripted
  8-hour shift as plain data and a ROS-free replay of it for tests and benchmarks.

The rules are in docs/adaptive.md.
"""

from edge_trt_ros.adaptive.audit import AuditLog, read_audit
from edge_trt_ros.adaptive.config import OBJECTIVES, ControllerConfig
from edge_trt_ros.adaptive.controller import AdaptiveController
from edge_trt_ros.adaptive.decision import ControllerState, Decision, decide
from edge_trt_ros.adaptive.guard import Accuracy
from edge_trt_ros.adaptive.inputs import (
    Battery,
    Inputs,
    Light,
    LiveWindow,
    Thermal,
    thermal_input,
    throttle_threshold,
)
from edge_trt_ros.adaptive.table import EfficiencyTable

__all__ = [
    "OBJECTIVES", "Accuracy", "AdaptiveController", "AuditLog", "Battery", "ControllerConfig",
    "ControllerState", "Decision", "EfficiencyTable", "Inputs", "Light", "LiveWindow",
    "Thermal", "decide", "read_audit", "thermal_input", "throttle_threshold",
]
