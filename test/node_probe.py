"""A detector process and a probe node that feeds it and watches it, for the fault, storm
and soak tests (real node process, real DDS on loopback).

The probe spins on its own thread, so a test can publish a stream, call services and
wait for a /diagnostics status at the same time without hand-spinning.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.srv import SwitchEngine
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import image_msg
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.ros.processes import start_detector_command

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ANSWERS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class DetectorProcess:
    """The detector as the launch file starts it, its output collected from a pipe (not a
    file: a test that limits the node's file size must not break its log)."""

    def __init__(self, tmp: Path, camera: str, params: dict[str, str],
                 env: dict[str, str] | None = None, name: str = "detector") -> None:
        command = start_detector_command(camera, extra_params=params, backend="onnxruntime")
        command[command.index("__node:=detector")] = f"__node:={name}"
        command.append("--disable-external-lib-logs")  # no rcl log file: stdout only
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "ROS_LOG_DIR": str(tmp / "ros_log"), **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> str:
        """SIGINT like Ctrl-C; the whole output (for assertion messages)."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.text()


class Probe:
    """Publishes frames on ``camera`` and records answers, statuses and service results."""

    def __init__(self, name: str, camera: str, node_name: str = "/detector") -> None:
        self.node = Node(name)
        self.target = node_name
        self.pub = self.node.create_publisher(Image, camera, RELIABLE)
        self._lock = threading.Lock()
        self.answered: dict[int, float] = {}  # image stamp -> monotonic arrival
        self.statuses: dict[str, tuple[float, DiagnosticStatus]] = {}  # name -> (t, latest)
        self.efficiency: list[EfficiencyStatus] = []
        self.node.create_subscription(Detection2DArray, "/detections", self._on_det, ANSWERS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.node.create_subscription(EfficiencyStatus, f"{node_name}/efficiency",
                                      self._on_eff, 10)
        self.switch = self.node.create_client(SwitchEngine, f"{node_name}/switch_engine")
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()

    def close(self) -> None:
        self._executor.shutdown()
        self._spinner.join(timeout=10)
        self.node.destroy_node()

    # -- what comes back ------------------------------------------------------------------
    def _on_det(self, msg: Detection2DArray) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.answered.setdefault(stamp, time.monotonic())

    def _on_diag(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        with self._lock:
            for status in msg.status:
                self.statuses[status.name] = (now, status)

    def _on_eff(self, msg: EfficiencyStatus) -> None:
        with self._lock:
            self.efficiency.append(msg)
            del self.efficiency[:-50]

    def unanswered(self, stamps: list[int]) -> list[int]:
        with self._lock:
            return [s for s in stamps if s not in self.answered]

    def wait_answered(self, stamps: list[int], timeout: float = 15.0) -> list[int]:
        """The stamps still unanswered after waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while (missing := self.unanswered(stamps)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return missing

    def status(self, concern: str, predicate: Callable[[DiagnosticStatus], bool] = bool,
               timeout: float = 15.0, fresh: bool = True) -> DiagnosticStatus | None:
        """The first ``<node>: <concern>`` status published after this call (``fresh``)
        that satisfies ``predicate``; None after ``timeout``."""
        name = f"{self.target}: {concern}"
        since = time.monotonic() if fresh else -1.0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = self.statuses.get(name)
            if got is not None and got[0] > since and predicate(got[1]):
                return got[1]
            time.sleep(0.05)
        return None

    def latest_efficiency(self, timeout: float = 10.0) -> EfficiencyStatus:
        """An ~/efficiency message published after this call."""
        with self._lock:
            n = len(self.efficiency)
            first = self.efficiency[-1] if self.efficiency else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.efficiency and (len(self.efficiency) > n or
                                        self.efficiency[-1] is not first):
                    return self.efficiency[-1]
            time.sleep(0.05)
        raise AssertionError("no ~/efficiency message")

    # -- asking ---------------------------------------------------------------------------
    def call(self, client: Any, request: Any, timeout: float = 60.0) -> Any:
        assert client.wait_for_service(timeout_sec=10.0), "service not available"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert future.done(), "service call timed out"
        return future.result()

    def switch_to(self, precision: str = "", profile: str = "",
                  force: bool = False) -> SwitchEngine.Response:
        return self.call(self.switch, SwitchEngine.Request(
            precision=precision, fusion_profile=profile, force=force))

    def set_parameters(self, **values: Any) -> list[Any]:
        client = self.node.create_client(SetParameters, f"{self.target}/set_parameters")
        try:
            result = self.call(client, SetParameters.Request(parameters=[
                Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]))
            return list(result.results)
        finally:
            self.node.destroy_client(client)

    def ready(self, pixels: np.ndarray, encoding: str = "bgr8", timeout: float = 90.0) -> bool:
        """True once the node answers a frame: subscribed to the camera, and past its lazy
        idle state (it lets frames go until it has seen a subscriber to its detections)."""
        if not self.wait_subscribed(timeout):
            return False
        clock = self.node.get_clock()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamp = int(clock.now().nanoseconds)
            self.pub.publish(image_msg(pixels, encoding, stamp, "cam"))
            if not self.wait_answered([stamp], 0.5):
                return True
        return False

    def wait_subscribed(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pub.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False


class Stream:
    """Uniquely stamped frames at ``rate_hz`` from a thread; ``pixels`` can change live.

    Stamps are the probe's clock (so end-to-end latencies mean something), strictly
    increasing even when two frames fall into one clock tick."""

    def __init__(self, probe: Probe, pixels: np.ndarray, rate_hz: float,
                 encoding: str = "bgr8") -> None:
        self.probe = probe
        self.pixels = pixels
        self.encoding = encoding
        self.rate_hz = rate_hz
        self.sent: list[int] = []
        self._last = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Stream:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        clock = self.probe.node.get_clock()
        while not self._stop.is_set():
            stamp = max(int(clock.now().nanoseconds), self._last + 1)
            self._last = stamp
            self.probe.pub.publish(image_msg(self.pixels, self.encoding, stamp, "cam"))
            self.sent.append(stamp)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def since(self, index: int) -> list[int]:
        return list(self.sent[index:])


def tiny_catalog(tmp: Path, int8: Callable[[Path, Path], None]) -> tuple[Path, Path]:
    """(model, variants dir): the tiny detector (test/onnx_models.py), its fp16 variant made
    the way the node makes one, and an int8 variant written by ``int8(model, path)``, in a
    manifest the node reads like the shipped one."""
    from onnx_models import tiny_detector

    from edge_trt_ros.files import sha256_file, write_json_atomic
    from edge_trt_ros.variants.catalog import Catalog
    from edge_trt_ros.variants.manifest import load_manifest, variant_entry

    model = tiny_detector(tmp / "tiny.onnx")
    directory = tmp / "variants"
    Catalog(model, directory).ensure_fp16()
    int8_path = directory / "tiny.int8.onnx"
    int8(model, int8_path)
    manifest = load_manifest(directory)
    manifest["variants"]["int8"] = variant_entry(
        directory, "int8", int8_path, precision="int8", recipe="test fixture",
        base_sha256=sha256_file(model), calibration_key=None, backends=["onnxruntime"],
        details={"int8_recipe": {"target": "onnxruntime-cpu"}})
    write_json_atomic(directory / "variants.json",
                      {k: v for k, v in manifest.items() if not k.startswith("_")})
    return model, directory


def quantized_int8(model: Path, out: Path) -> None:
    """A real int8 model: ONNX Runtime's dynamic quantization of the weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(model), str(out), weight_type=QuantType.QUInt8)


REPORT_ENV = "EDGE_TRT_RELIABILITY_REPORT"


def record(section: str, name: str, **result: Any) -> None:
    """Merge what a fault or storm test saw into ``$EDGE_TRT_RELIABILITY_REPORT`` (a JSON
    file; nothing without it): bench/reliability_report.py builds docs/reliability.md's
    table from it."""
    import json

    target = os.environ.get(REPORT_ENV)
    if not target:
        return
    path = Path(target)
    report = json.loads(path.read_text()) if path.exists() else {}
    report.setdefault(section, {})[name] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def ros_context() -> Callable[[], None]:
    """rclpy.init() for a module; returns its shutdown."""
    rclpy.init()
    return rclpy.shutdown


__all__ = ["DetectorProcess", "Probe", "Stream", "quantized_int8", "record", "ros_context",
           "tiny_catalog", "values"]
