"""Helpers for tests that talk to real nodes over loopback DDS."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from edge_trt_ros.power.reading import PowerSensor
from edge_trt_ros.power.select import open_power_sensor
from edge_trt_ros.power.sysfs import system_root


def image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str,
              pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((h, w * channels + pad), np.uint8)
    rows[:, : w * channels] = pixels.reshape(h, -1)
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg = Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                step=w * channels + pad)
    msg.data = rows.tobytes()
    return msg


def spin_until(node: Node, predicate: Callable[[], Any], timeout: float) -> Any:
    """Spin ``node`` until ``predicate()`` is truthy; returns its value or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
        value = predicate()
        if value:
            return value
    return None


def set_parameters(node: Node, target: str, **values: Any) -> list[Any]:
    """Set parameters on a remote node; returns the SetParametersResult list."""
    client = node.create_client(SetParameters, f"{target}/set_parameters")
    assert client.wait_for_service(timeout_sec=10.0), f"{target}/set_parameters not available"
    request = SetParameters.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
    )
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
    node.destroy_client(client)
    assert future.result() is not None, "set_parameters call timed out"
    return list(future.result().results)


def machine_power_sensor() -> PowerSensor:
    """The sensor a node on this machine picks with ``hardware_profile: auto`` (tests compare
    the node's claims with it, so they hold on a robot with INA3221, RAPL or NVML too)."""
    sensor, _ = open_power_sensor("auto", system_root())
    current = sensor.current
    sensor.close()
    return current


def stop(process: subprocess.Popen[bytes], log: Path | None = None) -> str:
    """SIGINT like Ctrl-C, then wait; returns the process log for assertion messages."""
    if process.poll() is None:
        process.send_signal(2)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_text() if log and log.exists() else ""


__all__ = ["image_msg", "machine_power_sensor", "set_parameters", "spin_until", "stop"]
