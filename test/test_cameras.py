"""Several cameras on one detector node over real loopback DDS: routing, compressed input,
lazy idling, a stalled camera, the debug image, and camera lists refused at configure.

One node serves three cameras on a model whose output is known: ``/cam_a`` (raw),
``/cam_b`` (compressed jpeg on ``/cam_b/image_raw/compressed``) and ``/cam_c`` (raw, which
the tests subscribe to only when they want it processed). A second node with
``lazy_unsubscribe`` checks the idle state with no subscribers at all. The module's node runs
with ``lazy_filter`` off, so idle frames reach it and are counted; the filter (the default)
has its own test.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from edge_trt_ros.msg import EfficiencyStatus
from onnx_models import constant_output_model, names_metadata, yolov8_output
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import image_msg, spin_until, stop
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.ros.processes import start_detector, start_detector_command
from edge_trt_ros.vision.compressed import encode_compressed

NAMES = ["scratch", "crack", "dent", "stain"]
BOXES = [(160.0, 160.0, 100.0, 50.0)]
SCORES = [[0.9, 0.0, 0.0, 0.0]]
CAMS = ("/cam_a/image_raw", "/cam_b/image_raw", "/cam_c/image_raw")
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
_stamps = itertools.count(1_700_000_000_000_000_000, 1_000_000)


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class Probe:
    """Cameras and consumers of the test: publishes frames, records what comes back."""

    def __init__(self, name: str = "camera_probe") -> None:
        self.node = Node(name)
        self.raw = {c: self.node.create_publisher(Image, c, RELIABLE) for c in CAMS}
        self.compressed = self.node.create_publisher(CompressedImage,
                                                     f"{CAMS[1]}/compressed", RELIABLE)
        self.got: dict[str, list[Detection2DArray]] = {}
        self.subs: dict[str, Any] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.efficiency: list[EfficiencyStatus] = []
        self.debug: list[Image] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      self.diagnostics.append, 10)

    def listen(self, topic: str) -> None:
        self.got.setdefault(topic, [])
        self.subs[topic] = self.node.create_subscription(
            Detection2DArray, topic, self.got[topic].append, RELIABLE)

    def unlisten(self, topic: str) -> None:
        self.node.destroy_subscription(self.subs.pop(topic))

    def send(self, camera: str, frame_id: str, pixels: np.ndarray,
             compressed: bytes | None = None) -> int:
        stamp = next(_stamps)
        msg = image_msg(pixels, "rgb8", stamp, frame_id)
        if compressed is None and camera != CAMS[1]:
            self.raw[camera].publish(msg)
        else:
            data = compressed if compressed is not None else \
                encode_compressed(np.ascontiguousarray(pixels[:, :, ::-1]), "jpeg")
            c = CompressedImage(header=msg.header, format="jpeg")
            c.data = data
            self.compressed.publish(c)
        return stamp

    def answered(self, topic: str) -> set[int]:
        return {_ns(m.header.stamp) for m in self.got.get(topic, [])}

    def camera_status(self, camera: str, since: float = 0.0) -> dict[str, str] | None:
        """The newest /diagnostics status of ``camera`` (message + values) received after
        ``since`` (a count of diagnostics messages)."""
        for arr in reversed(self.diagnostics[int(since):]):
            for s in arr.status:
                if s.name.endswith(f"camera {camera}"):
                    return {"message": s.message, "level": str(s.level[0])} | {
                        kv.key: kv.value for kv in s.values}
        return None

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.01)

    def wait_matched(self, topic: str, publisher: Any = None, timeout: float = 10.0) -> None:
        ok = spin_until(self.node, lambda: (publisher or self.raw[topic]).get_subscription_count()
                        > 0, timeout)
        assert ok, f"the detector never subscribed to {topic}"


def _known_model(tmp: Path) -> Path:
    return constant_output_model(tmp / "known.onnx", {"output0": yolov8_output(BOXES, SCORES)},
                                 (320, 320), names_metadata(NAMES, (320, 320)))


def _params(tmp: Path, model: Path, **more: str) -> dict[str, str]:
    return {"model_path": str(model), "engine_cache_dir": str(tmp / "cache"),
            "image_topics": "[" + ", ".join(CAMS) + "]",
            "image_transports": "[raw, compressed, raw]",
            "stats_window_s": "1.0", "diagnostics_period_s": "0.2", "workers": "2",
            "lazy_filter": "false"} | more


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    rclpy.init()
    try:
        yield
    finally:
        rclpy.shutdown()


@pytest.fixture(scope="module")
def probe(ros: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    tmp = tmp_path_factory.mktemp("cameras")
    log = tmp / "detector.log"
    with log.open("wb") as out:
        process = start_detector("/unused/image", backend="onnxruntime",
                                 extra_params=_params(tmp, _known_model(tmp)),
                                 stdout=out, stderr=subprocess.STDOUT)
    p = Probe()
    try:
        for cam in (CAMS[0], CAMS[2]):
            p.wait_matched(cam, timeout=30.0)
        p.wait_matched(CAMS[1], p.compressed)
        yield p
    finally:
        p.node.destroy_node()
        text = stop(process, log)
        assert process.returncode == 0, f"detector exited with {process.returncode}:\n{text}"


FRAME = np.zeros((480, 640, 3), np.uint8)


def _boxes(msg: Detection2DArray) -> list[list[float]]:
    return [[round(v, 1) for v in (d.bbox.center.position.x, d.bbox.center.position.y,
                                   d.bbox.size_x, d.bbox.size_y)] for d in msg.detections]


def test_each_camera_gets_its_own_detections_with_its_own_headers(probe: Probe) -> None:
    for topic in ("/cam_a/detections", "/cam_b/detections"):
        probe.listen(topic)
    probe.spin(1.0)  # the node sees the new subscribers (lazy) before frames are sent
    sent: dict[str, set[int]] = {"a": set(), "b": set()}
    for _ in range(15):
        sent["a"].add(probe.send(CAMS[0], "cam_a_optical", FRAME))
        sent["b"].add(probe.send(CAMS[1], "cam_b_optical", FRAME))
        probe.spin(0.05)
    spin_until(probe.node, lambda: len(probe.answered("/cam_a/detections")) >= 12
               and len(probe.answered("/cam_b/detections")) >= 12, 15.0)
    for cam, other in (("a", "b"), ("b", "a")):
        msgs = probe.got[f"/cam_{cam}/detections"]
        assert len(msgs) >= 12, f"camera {cam}: {len(msgs)} of 15 frames answered"
        assert {m.header.frame_id for m in msgs} == {f"cam_{cam}_optical"}  # none mixed
        stamps = [_ns(m.header.stamp) for m in msgs]
        assert set(stamps) <= sent[cam] and not set(stamps) & sent[other]
        assert stamps == sorted(stamps)  # per camera in arrival order
        assert all(d.header == m.header for m in msgs for d in m.detections)
        # 640x480 -> 320x320: scale 0.5, 40 px padding; a jpeg frame maps the same way
        assert all(_boxes(m) == [[320.0, 240.0, 200.0, 100.0]] for m in msgs)


def test_a_corrupt_compressed_frame_is_a_counted_drop(probe: Probe) -> None:
    if "/cam_b/detections" not in probe.subs:
        probe.listen("/cam_b/detections")
        probe.spin(1.0)
    # a good frame answered first: the node has matched the subscriber and lifted the lazy
    # filter, so the corrupt frames below are delivered, not filtered in DDS
    first = probe.send(CAMS[1], "cam_b_optical", FRAME)
    assert spin_until(probe.node, lambda: first in probe.answered("/cam_b/detections"), 10.0)
    jpeg = encode_compressed(FRAME, "jpeg")
    status: dict[str, str] | None = None
    for rejected, payload in enumerate((jpeg[: len(jpeg) // 2],
                                        b"\xff\xd8\xffgarbage\xff\xd9"), start=1):
        # one at a time, sent again if it never got to the decoder: the input is best effort
        # (a busy host may lose one) and a frame sent right behind another may replace it in
        # the camera's one-slot mailbox, a drop of another reason
        for _ in range(5):
            probe.send(CAMS[1], "cam_b_optical", FRAME, compressed=payload)
            status = spin_until(probe.node, lambda n=rejected: (
                s := probe.camera_status(CAMS[1])) and int(s["frames_rejected"]) >= n and s, 2.0)
            if status:
                break
        assert status, probe.camera_status(CAMS[1])
    assert status["level"] == "1" and "jpeg" in status["message"], status
    assert status["transport"] == "compressed"
    stamp = probe.send(CAMS[1], "cam_b_optical", FRAME)  # the next good frame is answered
    assert spin_until(probe.node, lambda: stamp in probe.answered("/cam_b/detections"), 10.0)
    assert int(probe.camera_status(CAMS[0])["frames_rejected"]) == 0  # type: ignore[index]


def test_lazy_camera_is_skipped_until_subscribed_and_again_after(probe: Probe) -> None:
    for _ in range(10):  # nobody subscribes to /cam_c/detections
        probe.send(CAMS[2], "cam_c_optical", FRAME)
        probe.spin(0.03)
    idle = spin_until(probe.node, lambda: (s := probe.camera_status(CAMS[2]))
                      and int(s["frames_idle_skipped"]) >= 8 and s, 10.0)
    assert idle, probe.camera_status(CAMS[2])
    assert idle["frames_processed"] == "0" and "idle: no subscribers" in idle["message"]
    assert idle["has_subscribers"] == "false" and int(idle["frames_rejected"]) == 0
    skipped = int(idle["frames_idle_skipped"])

    probe.listen("/cam_c/detections")  # the first subscriber: the next frame is processed
    probe.spin(0.5)
    stamps = [probe.send(CAMS[2], "cam_c_optical", FRAME) for _ in range(1)]
    assert spin_until(probe.node, lambda: stamps[0] in probe.answered("/cam_c/detections"),
                      10.0), probe.camera_status(CAMS[2])
    seen = len(probe.diagnostics)
    serving = spin_until(probe.node, lambda: probe.camera_status(CAMS[2], seen), 5.0)
    assert serving and serving["has_subscribers"] == "true", serving
    skipped = int(serving["frames_idle_skipped"])  # frames still in flight when it woke: idle
    for _ in range(5):
        probe.send(CAMS[2], "cam_c_optical", FRAME)
        probe.spin(0.05)
    busy = spin_until(probe.node, lambda: (s := probe.camera_status(CAMS[2]))
                      and int(s["frames_processed"]) >= 4 and s, 10.0)
    assert busy and busy["has_subscribers"] == "true", probe.camera_status(CAMS[2])
    assert int(busy["frames_idle_skipped"]) == skipped  # nothing skipped while subscribed

    probe.unlisten("/cam_c/detections")  # the last subscriber left: idle again
    probe.spin(0.5)
    processed = int(busy["frames_processed"])
    for _ in range(6):
        probe.send(CAMS[2], "cam_c_optical", FRAME)
        probe.spin(0.03)
    again = spin_until(probe.node, lambda: (s := probe.camera_status(CAMS[2]))
                       and int(s["frames_idle_skipped"]) >= skipped + 5 and s, 10.0)
    assert again, probe.camera_status(CAMS[2])
    assert int(again["frames_processed"]) <= processed + 1  # at most one already in flight


def test_a_stalled_camera_does_not_slow_the_others(probe: Probe) -> None:
    for topic in ("/cam_a/detections", "/cam_b/detections"):
        if topic not in probe.subs:
            probe.listen(topic)
    probe.spin(0.5)
    for _ in range(5):
        probe.send(CAMS[1], "cam_b_optical", FRAME)
        probe.spin(0.05)
    before = len(probe.got["/cam_a/detections"])
    sent = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:  # camera b has stopped; camera a goes on at 20 Hz
        sent.append(probe.send(CAMS[0], "cam_a_optical", FRAME))
        probe.spin(0.05)
    spin_until(probe.node, lambda: set(sent) <= probe.answered("/cam_a/detections"), 5.0)
    answered = set(sent) & probe.answered("/cam_a/detections")
    assert len(answered) >= 0.9 * len(sent), (len(answered), len(sent))
    assert len(probe.got["/cam_a/detections"]) - before >= 0.9 * len(sent)
    b = probe.camera_status(CAMS[1])
    a = probe.camera_status(CAMS[0])
    assert b is not None and a is not None
    assert b["level"] == "1" and "stalled" in b["message"], b
    assert a["level"] == "0", a


def test_the_debug_image_is_drawn_only_while_subscribed(probe: Probe) -> None:
    if "/cam_a/detections" not in probe.subs:
        probe.listen("/cam_a/detections")
        probe.spin(0.5)
    for _ in range(5):
        probe.send(CAMS[0], "cam_a_optical", FRAME)
        probe.spin(0.05)
    status = spin_until(probe.node, lambda: (s := probe.camera_status(CAMS[0]))
                        and int(s["frames_processed"]) > 0 and s, 5.0)
    assert status and status["debug_images"] == "0"  # nobody watches: nothing drawn
    assert status["debug_image"] == "/cam_a/debug_image"

    sub = probe.node.create_subscription(Image, "/cam_a/debug_image", probe.debug.append, 5)
    probe.spin(0.5)
    sent = []
    for _ in range(8):
        sent.append(probe.send(CAMS[0], "cam_a_optical", FRAME))
        probe.spin(0.05)
    assert spin_until(probe.node, lambda: probe.debug, 10.0), probe.camera_status(CAMS[0])
    img = probe.debug[-1]
    assert _ns(img.header.stamp) in sent and img.header.frame_id == "cam_a_optical"
    assert (img.width, img.height, img.encoding) == (640, 480, "bgr8")
    pixels = np.frombuffer(img.data, np.uint8).reshape(480, 640, 3)
    assert pixels[190, 320].any()  # the box's top edge (y = 240 - 50) is drawn on black
    assert not pixels[470, 630].any()  # far from boxes and text: the black frame
    probe.node.destroy_subscription(sub)
    probe.spin(0.5)
    drawn = int(probe.camera_status(CAMS[0])["debug_images"])  # type: ignore[index]
    assert drawn > 0
    for _ in range(5):
        probe.send(CAMS[0], "cam_a_optical", FRAME)
        probe.spin(0.05)
    probe.spin(0.6)
    assert int(probe.camera_status(CAMS[0])["debug_images"]) <= drawn + 1  # type: ignore[index]


def _start_in(namespace: str, params: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A second detector beside the module's, in its own namespace (its own node name)."""
    command = start_detector_command("/unused/image", params, backend="onnxruntime")
    with log.open("wb") as out:
        return subprocess.Popen([*command, "-r", f"__ns:={namespace}"], stdout=out,
                                stderr=subprocess.STDOUT)


def test_no_subscribers_at_all_idles_and_unsubscribes(ros: None, tmp_path: Path) -> None:
    """lazy_unsubscribe: with no subscribers the node drops its camera subscription and says
    "idle: no subscribers"; a subscriber brings the subscription and the answers back."""
    camera = "/cam_idle/image_raw"
    log = tmp_path / "idle.log"
    params = _params(tmp_path, _known_model(tmp_path), lazy_unsubscribe="true",
                     image_topics=f"[{camera}]", image_transports="[raw]",
                     diagnostics_period_s="1.0")
    process = _start_in("/idle", params, log)
    node = Node("idle_probe")
    try:
        eff: list[EfficiencyStatus] = []
        node.create_subscription(EfficiencyStatus, "/idle/detector/efficiency", eff.append, 10)
        pub = node.create_publisher(Image, camera, RELIABLE)
        got = spin_until(node, lambda: [e for e in eff if e.state == "active"], 30.0)
        assert got, f"no efficiency status:\n{log.read_text()}"
        assert got[-1].activity == "idle: no subscribers", got[-1].activity
        assert pub.get_subscription_count() == 0  # nobody subscribed: not subscribed either
        answers: list[Detection2DArray] = []
        node.create_subscription(Detection2DArray, "/cam_idle/detections", answers.append,
                                 RELIABLE)
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 10.0), \
            "the detector did not subscribe to its camera again"
        stamp = next(_stamps)
        pub.publish(image_msg(FRAME, "rgb8", stamp, "cam_idle_optical"))
        assert spin_until(node, lambda: any(_ns(a.header.stamp) == stamp for a in answers),
                          10.0), log.read_text()[-3000:]
        n = len(eff)
        busy = spin_until(node, lambda: [e for e in eff[n:] if e.activity == "processing"],
                          10.0)
        assert busy and busy[-1].frames_processed >= 1 and busy[-1].frames_idle_skipped == 0
    finally:
        node.destroy_node()
        text = stop(process, log)
    assert process.returncode == 0, text


def test_an_idle_cameras_frames_are_filtered_out_and_the_next_one_after_a_subscriber_runs(
        ros: None, tmp_path: Path) -> None:
    """lazy_filter (default): an idle camera's frames are dropped by DDS before delivery (or,
    on a middleware without content filters, received and counted as idle skips); the frame
    after a subscriber appears is answered, and the jump in publication sequence numbers is
    not reported as frames lost."""
    camera = "/cam_filter/image_raw"
    log = tmp_path / "filter.log"
    params = _params(tmp_path, _known_model(tmp_path), image_topics=f"[{camera}]",
                     image_transports="[raw]", lazy_filter="true")
    process = _start_in("/filter", params, log)
    node = Node("filter_probe")
    try:
        diags: list[DiagnosticArray] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        pub = node.create_publisher(Image, camera, RELIABLE)
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 30.0), \
            log.read_text()[-3000:]
        for _ in range(20):
            pub.publish(image_msg(FRAME, "rgb8", next(_stamps), "cam_filter_optical"))
            spin_until(node, lambda: False, 0.03)

        def status(name: str) -> dict[str, str] | None:
            for arr in reversed(diags):
                for st in arr.status:
                    if st.name == f"/filter/detector: {name}":
                        return {"message": st.message} | {kv.key: kv.value for kv in st.values}
            return None

        idle = spin_until(node, lambda: (st := status(f"camera {camera}"))
                          and int(st["frames_idle_skipped"]) + 20 * (
                              st["filtered_by_dds"] == "true") >= 15 and st, 10.0)
        assert idle, status(f"camera {camera}")
        assert idle["frames_processed"] == "0" and "idle: no subscribers" in idle["message"]
        if idle["filtered_by_dds"] == "true":
            assert int(idle["frames_received"]) <= 2  # DDS kept them from the node
            assert "filters its frames out" in idle["message"]
        answers: list[Detection2DArray] = []
        node.create_subscription(Detection2DArray, "/cam_filter/detections", answers.append,
                                 RELIABLE)
        spin_until(node, lambda: False, 0.5)
        stamp = next(_stamps)
        pub.publish(image_msg(FRAME, "rgb8", stamp, "cam_filter_optical"))
        assert spin_until(node, lambda: any(_ns(a.header.stamp) == stamp for a in answers),
                          5.0), status(f"camera {camera}")
        n = len(diags)
        spin_until(node, lambda: len(diags) > n + 2, 5.0)
        delivery = status("input delivery")
        if delivery is not None:  # the filtered frames are not frames lost on the way
            assert delivery["frames_lost"] == "0", delivery
    finally:
        node.destroy_node()
        text = stop(process, log)
    assert process.returncode == 0, text


def test_camera_lists_whose_outputs_collide_are_refused_at_configure(tmp_path: Path) -> None:
    log = tmp_path / "collide.log"
    params = {"engine_cache_dir": str(tmp_path / "cache"),
              "image_topics": "[/front/image_raw, /front/image_rect]"}
    process = _start_in("/collide", params, log)
    try:
        process.wait(timeout=60)
    finally:
        text = stop(process, log)
    assert process.returncode != 0
    assert "cannot configure the cameras" in text and "/front/detections" in text, text
    assert "engine" not in text.split("cannot configure the cameras")[0].lower() or \
        "ready in" not in text  # refused before any engine was loaded


def test_synthetic_cameras_through_a_lifecycle_cycle(ros: None, tmp_path: Path) -> None:
    """Two synthetic camera instances (own names and scenes, one of them compressed) feed
    one detector; its outputs stay routed after deactivate, cleanup, configure, activate."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    from edge_trt_ros.ros.processes import executable

    cams = ("/syn_front/image_raw", "/syn_rear/image_raw")
    params = _params(tmp_path, _known_model(tmp_path), image_topics=f"[{', '.join(cams)}]",
                     image_transports="[raw, compressed]", diagnostics_period_s="1.0")
    log = tmp_path / "syn.log"
    process = _start_in("/syn", params, log)
    cameras = []
    for name, topic, extra in (("front_cam", cams[0], []),
                               ("rear_cam", cams[1], ["-p", "transport:=compressed"])):
        cameras.append(subprocess.Popen(
            [executable("synthetic_camera"), "--ros-args", "-r", f"__node:={name}",
             "-r", f"image:={topic}", "-p", f"scene:={name}", "-p", "rate_hz:=10.0",
             "-p", "width:=320", "-p", "height:=240", "-p", "loop_frames:=3",
             "-p", f"frame_id:={name}_optical", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    node = Node("syn_probe")
    got: dict[str, list[Detection2DArray]] = {"front": [], "rear": []}
    for key in got:
        node.create_subscription(Detection2DArray, f"/syn_{key}/detections", got[key].append,
                                 RELIABLE)
    change: Any = node.create_client(ChangeState, "/syn/detector/change_state")

    def transition(tid: int) -> bool:
        future = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
        rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
        result: Any = future.result()
        return bool(result is not None and result.success)

    def both_answered(n: int) -> bool:
        return bool(spin_until(node, lambda: all(len(v) >= n for v in got.values()), 30.0))

    try:
        assert both_answered(3), log.read_text()[-3000:]
        assert {m.header.frame_id for m in got["front"]} == {"front_cam_optical"}
        assert {m.header.frame_id for m in got["rear"]} == {"rear_cam_optical"}
        assert change.wait_for_service(timeout_sec=10.0)
        for tid in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                    Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert transition(tid), (tid, log.read_text()[-3000:])
        for v in got.values():
            v.clear()
        assert both_answered(3), log.read_text()[-3000:]
        assert {m.header.frame_id for m in got["rear"]} == {"rear_cam_optical"}
    finally:
        node.destroy_node()
        for cam in cameras:
            stop(cam)
        text = stop(process, log)
    assert process.returncode == 0, text
