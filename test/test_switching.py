"""Runtime engine switching on the real node: services and parameters under a live stream.

The shipped model and its shipped variants on ONNX Runtime (CPU), the node as its own
process started as the launch file starts it, frames with unique stamps over loopback DDS
(reliable, so the transport loses nothing and every lost frame would be the node's). The
stream runs at a rate this machine sustains with room to spare on every variant and profile
(a third of the node's measured fp32 throughput, at most 12 fps), so a lost frame means the
switch lost it, not the machine; the 30 fps figures are bench/node.py's.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.srv import GetEngineInfo, SwitchEngine
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import image_msg, set_parameters, spin_until, stop
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.dataset import render_sample
from edge_trt_ros.ros.processes import start_detector
from edge_trt_ros.variants.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "/switch_cam/image_raw"
MAX_RATE_HZ = 12.0
_stamps = itertools.count(1_800_000_000_000_000_000, 1_000_000)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class Stream:
    """Publishes uniquely stamped 640x480 bgr8 frames at RATE_HZ from its own thread."""

    def __init__(self, node: Node, rate_hz: float = MAX_RATE_HZ) -> None:
        rgb = render_sample(30_000_123, width=640, height=480).image
        self._pixels = np.ascontiguousarray(rgb[:, :, ::-1])
        self._pub = node.create_publisher(Image, CAMERA, RELIABLE)
        self.rate_hz = rate_hz
        self.sent: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Stream:
        self.sent = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            stamp = next(_stamps)
            self._pub.publish(image_msg(self._pixels, "bgr8", stamp, "cam"))
            self.sent.append(stamp)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


class Probe:
    def __init__(self) -> None:
        self.node = Node("switch_probe")
        self.answered: dict[int, Detection2DArray] = {}
        self.efficiency: list[EfficiencyStatus] = []
        self._lock = threading.Lock()
        self.node.create_subscription(Detection2DArray, "/detections", self._on_det, RELIABLE)
        self.node.create_subscription(EfficiencyStatus, "/detector/efficiency",
                                      self.efficiency.append, 10)
        self.switch = self.node.create_client(SwitchEngine, "/detector/switch_engine")
        self.info = self.node.create_client(GetEngineInfo, "/detector/get_engine_info")
        self.stream = Stream(self.node)

    def _on_det(self, msg: Detection2DArray) -> None:
        with self._lock:
            self.answered[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg

    def call(self, client, request, timeout: float = 60.0):  # type: ignore[no-untyped-def]
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(request)
        assert spin_until(self.node, future.done, timeout), "service call timed out"
        return future.result()

    def switch_to(self, precision: str = "", profile: str = "", force: bool = False):  # type: ignore[no-untyped-def]
        return self.call(self.switch, SwitchEngine.Request(
            precision=precision, fusion_profile=profile, force=force))

    def engine(self) -> GetEngineInfo.Response:
        return self.call(self.info, GetEngineInfo.Request())

    def engine_becomes(self, precision: str, profile: str = "",
                       timeout: float = 30.0) -> GetEngineInfo.Response:
        """The engine info once ``precision`` (and ``profile``) runs: a parameter switch is
        applied after the parameter is accepted, and on a loaded host opening the engine
        takes seconds."""
        deadline = time.monotonic() + timeout
        info = self.engine()
        while (info.precision != precision or profile not in ("", info.fusion_profile)) \
                and time.monotonic() < deadline:
            self.settle(0.2)
            info = self.engine()
        return info

    def settle(self, seconds: float = 1.5) -> None:
        spin_until(self.node, lambda: False, seconds)

    def fresh_status(self) -> EfficiencyStatus:
        """An ~/efficiency message published after this call."""
        n = len(self.efficiency)
        status = spin_until(self.node, lambda: len(self.efficiency) > n + 1, 10.0)
        assert status, "no ~/efficiency"
        return self.efficiency[-1]

    def unanswered(self, sent: list[int]) -> list[int]:
        with self._lock:
            return [s for s in sent if s not in self.answered]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    tmp = tmp_path_factory.mktemp("switching")
    log = tmp / "detector.log"
    with log.open("wb") as out:
        process = start_detector(
            CAMERA, backend="onnxruntime",
            extra_params={"input_qos.reliability": "reliable", "input_qos.depth": "10",
                          "engine_cache_dir": str(tmp / "cache"),
                          "keep_ready": "[int8/conservative]"},
            stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    p = Probe()
    try:
        assert spin_until(p.node, lambda: p.stream._pub.get_subscription_count() > 0, 60.0), \
            f"detector never subscribed:\n{stop(process, log)}"
        p.stream.rate_hz = 30.0  # as fast as a camera: how much does this machine process?
        with p.stream:
            p.settle(4.0)
        capacity = max(s.fps for s in p.efficiency[-2:])
        p.stream.rate_hz = min(MAX_RATE_HZ, max(2.0, capacity / 3))
        p.settle(1.0)
        yield p
    finally:
        p.node.destroy_node()
        rclpy.shutdown()
        text = stop(process, log)
        assert process.returncode == 0, f"detector exited with {process.returncode}:\n{text}"


def test_every_switch_through_the_service_loses_no_frame(probe: Probe) -> None:
    cycle = [("int8", "max"), ("fp16", "balanced"), ("int8", "conservative"),
             ("fp32", "conservative"), ("int8", "none"), ("int8", "conservative"),
             ("fp32", "max")]  # int8/conservative is kept ready: swapped in, twice
    during = 0  # frames sent while a switch was being prepared
    dropped_before = probe.fresh_status().frames_dropped
    with probe.stream:
        probe.settle(1.0)
        for precision, profile in cycle:
            before = len(probe.stream.sent)
            r = probe.switch_to(precision, profile)
            during += len(probe.stream.sent) - before
            assert r.success, r.message
            assert (r.active_precision, r.active_fusion_profile) == (precision, profile)
            assert r.switch_time_ms > 0
            assert ("kept ready" in r.message) == ((precision, profile) == (
                "int8", "conservative")), r.message
            probe.settle(0.7)
    sent = list(probe.stream.sent)
    assert spin_until(probe.node, lambda: not probe.unanswered(sent), 10.0), \
        f"{len(probe.unanswered(sent))} of {len(sent)} frames unanswered"
    assert len(sent) >= 10 and during >= 1, (len(sent), during)
    assert probe.fresh_status().frames_dropped == dropped_before


def test_switching_through_parameters_applies_and_keeps_frames(probe: Probe) -> None:
    with probe.stream:
        probe.settle(0.5)
        [p, f] = set_parameters(probe.node, "/detector", precision="int8",
                                fusion_profile="balanced")
        assert p.successful and f.successful, (p.reason, f.reason)
        info = probe.engine_becomes("int8", "balanced")
        assert (info.precision, info.fusion_profile, info.active_variant) == (
            "int8", "balanced", "int8-ort")
        [back] = set_parameters(probe.node, "/detector", precision="fp32")
        assert back.successful
        assert probe.engine_becomes("fp32").precision == "fp32"
        probe.settle(0.5)
    sent = list(probe.stream.sent)
    assert spin_until(probe.node, lambda: not probe.unanswered(sent), 10.0)
    assert probe.engine().precision == "fp32"


def test_refusals_say_why_and_change_nothing(probe: Probe) -> None:
    before = probe.engine()
    bad = probe.switch_to("fp8")
    assert not bad.success and "fp8" in bad.message
    # a guard tighter than the int8 variant's recorded worst drop refuses it
    int8_drop = load_manifest(ROOT / "models" / "variants")["variants"]["int8-ort"][
        "evaluation"]["worst_drop"]
    assert int8_drop > 0
    [drop] = set_parameters(probe.node, "/detector", max_accuracy_drop=int8_drop / 2)
    assert drop.successful
    try:
        refused = probe.switch_to("int8", "max")
        assert not refused.success and "fails the accuracy guard" in refused.message
        assert "force" in refused.message
        [param] = set_parameters(probe.node, "/detector", precision="int8")
        assert not param.successful and "accuracy guard" in param.reason
        after = probe.engine()
        assert (after.active_variant, after.fusion_profile, after.engine_id) == (
            before.active_variant, before.fusion_profile, before.engine_id)
        forced = probe.switch_to("int8", "max", force=True)
        assert forced.success and "FORCED" in forced.message
        assert probe.engine().forced
    finally:
        set_parameters(probe.node, "/detector", max_accuracy_drop=0.005)
        assert probe.switch_to("fp32", "max").success
    assert not probe.engine().forced


def test_concurrent_requests_are_serialized_and_the_state_stays_consistent(
    probe: Probe
) -> None:
    clients = [probe.node.create_client(SwitchEngine, "/detector/switch_engine")
               for _ in range(3)]
    targets = [("int8", "max"), ("fp16", "max"), ("fp32", "balanced")]
    for c in clients:
        assert c.wait_for_service(timeout_sec=10.0)
    futures = [c.call_async(SwitchEngine.Request(precision=p, fusion_profile=f))
               for c, (p, f) in zip(clients, targets, strict=True)]
    done_order: list[int] = []
    deadline = time.monotonic() + 60
    while len(done_order) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(probe.node, timeout_sec=0.02)
        done_order += [i for i, f in enumerate(futures) if f.done() and i not in done_order]
    results = [f.result() for f in futures]
    assert all(r.success for r in results), [r.message for r in results]
    info = probe.engine()
    last = results[done_order[-1]]
    assert (info.precision, info.fusion_profile) == (last.active_precision,
                                                     last.active_fusion_profile)
    params = probe.node.create_client(GetParameters, "/detector/get_parameters")
    got = probe.call(params, GetParameters.Request(names=["precision", "fusion_profile"]))
    assert [v.string_value for v in got.values] == [info.precision, info.fusion_profile]
    for c in clients:
        probe.node.destroy_client(c)
    assert probe.switch_to("fp32", "max").success


def test_get_engine_info_lists_every_variant_with_its_accuracy(probe: Probe) -> None:
    info = probe.engine()
    assert info.backend == "onnxruntime" and info.device == "cpu"
    assert info.lifecycle_state == "active" and info.workers >= 1
    variants = {v.name: v for v in info.variants}
    assert set(variants) == {"fp32", "fp16", "int8-ort", "int8-trt"}
    assert variants["int8-ort"].runs_here and not variants["int8-trt"].runs_here
    assert "int8-ort" in variants["int8-trt"].reason
    for v in variants.values():
        assert 0.97 < v.map50 <= 1.0 and v.within_guard == 1
        assert list(v.lux_bins) == ["dark", "dim", "bright", "sunlit"]
        assert all(0.9 < m <= 1.0 for m in v.lux_bin_map50)
    assert info.variants_dir.endswith("models/variants")
    assert json.loads(info.capabilities_json)["onnxruntime"]["available"]
    assert set(info.fusion_profiles) == {"max", "balanced", "conservative", "none", "auto"}
    assert list(info.kept_ready) == ["int8/conservative"]


def test_efficiency_names_the_active_variant_and_its_accuracy(probe: Probe) -> None:
    assert probe.switch_to("fp16", "max").success
    try:
        with probe.stream:
            status = spin_until(probe.node, lambda: next(
                (s for s in reversed(probe.efficiency) if s.variant == "fp16"), None), 5.0)
        assert status is not None
        assert status.precision == "fp16" and status.state == "active"
        assert 0.97 < status.map50 < 1.0 and 0.0 <= status.map50_drop_vs_fp32 <= 0.005
    finally:
        assert probe.switch_to("fp32", "max").success
