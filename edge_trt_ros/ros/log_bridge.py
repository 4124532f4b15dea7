"""Forward the core's ``logging`` records into the node's rclpy logger.

The ROS-free core logs through the standard library (``edge_trt_ros.*`` loggers): engine
cache hits and misses, TensorRT build progress, calibration, sensor fallbacks. On a robot
the operator reads ``ros2 launch`` output, ``/rosout`` and rqt_console, so those records
must arrive there with their severity, not on a stderr nobody configured.
"""

from __future__ import annotations

import logging
from typing import Any

CORE_LOGGER = "edge_trt_ros"


class RosLogHandler(logging.Handler):
    """A ``logging`` handler writing to an rclpy logger at the matching severity."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self._ros = ros_logger
        self.setFormatter(logging.Formatter("[%(name)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.CRITICAL:
                self._ros.fatal(text)
            elif record.levelno >= logging.ERROR:
                self._ros.error(text)
            elif record.levelno >= logging.WARNING:
                self._ros.warning(text)
            elif record.levelno >= logging.INFO:
                self._ros.info(text)
            else:
                self._ros.debug(text)
        except Exception:  # a failing log call must never take the detector down
            self.handleError(record)


def bridge_core_logs(ros_logger: Any) -> RosLogHandler:
    """Route ``edge_trt_ros.*`` records to ``ros_logger`` (and nowhere else) at the node's
    own level (``--ros-args --log-level debug`` shows the core's debug records too); returns
    the handler so :func:`unbridge` can remove it."""
    core = logging.getLogger(CORE_LOGGER)
    handler = RosLogHandler(ros_logger)
    core.addHandler(handler)
    # rclpy's LoggingSeverity uses the logging module's numbers (DEBUG 10 ... FATAL 50)
    core.setLevel(int(ros_logger.get_effective_level()) or logging.INFO)
    core.propagate = False  # no second copy through a root handler
    return handler


def unbridge(handler: RosLogHandler) -> None:
    core = logging.getLogger(CORE_LOGGER)
    core.removeHandler(handler)
    core.propagate = True
