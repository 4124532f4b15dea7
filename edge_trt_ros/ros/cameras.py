"""The detector's cameras on the bus: one subscription and one set of outputs per camera.

``image_topics`` lists the cameras (default ``[image]``: today's single camera, remapped by
the launch file). Each camera publishes under its own namespace, the topic's parent:
``/front/image_raw`` -> ``/front/detections`` and ``/front/debug_image``; the bare default
``image`` keeps ``detections`` and ``~/debug_image``. Camera lists whose outputs would land on
one topic are refused at configure.

``image_transports`` (one entry for all cameras, or one per camera): ``raw`` subscribes to
``sensor_msgs/Image`` on the topic, ``compressed`` to ``sensor_msgs/CompressedImage`` on
``<topic>/compressed`` (image_transport's compressed transport), decoded on a worker.

Lazy (``lazy``, default on): a camera whose detections and debug image nobody subscribes
to has its frames counted as idle skips in the callback, never converted or inferred. The
publishers' matched events keep a flag per camera current (rclpy >= Iron), so the per-frame
check is one attribute read; without matched events (Humble) each frame asks the publishers
for their subscription counts (a C call, under a microsecond). Receiving a frame still costs
DDS and rclpy a copy and a message (about 6 % of a core for 640x480 at 30 fps on this
project's machine), so ``lazy_filter`` (default on) also sets a content filter that matches
no frame on an idle camera's subscription: the middleware drops its frames before they are
delivered, and clearing the filter brings the next frame (about 25 ms measured with Fast
DDS). Where the RMW has no content filters the frames are delivered and counted as idle
skips. ``lazy_unsubscribe`` instead drops the camera subscription while idle and subscribes
again when a subscriber appears (discovery: the first frame or two are missed).

Everything here is wiring: the per-camera state lives in the ROS-free runtime
(:class:`~edge_trt_ros.runtime.streams.CameraStream`), the drawing in
:mod:`edge_trt_ros.vision.draw`, the decode in :mod:`edge_trt_ros.vision.compressed`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from edge_trt_ros.errors import ImageFormatError
from edge_trt_ros.msg import EfficiencyStatus
from edge_trt_ros.ros.conversion import detections_msg, printable, view_of
from edge_trt_ros.ros.intake import FrameIntake
from edge_trt_ros.runtime.detector_runtime import DetectorRuntime
from edge_trt_ros.runtime.health import Health, camera_health
from edge_trt_ros.runtime.painter import Painter
from edge_trt_ros.runtime.streams import IDLE_NO_SUBSCRIBERS, CameraStream
from edge_trt_ros.runtime.workers import FrameResult
from edge_trt_ros.vision.compressed import decode_compressed
from edge_trt_ros.vision.draw import draw_detections
from edge_trt_ros.vision.image import ImageView

try:  # rclpy >= Iron: publishers report (un)matched subscriptions as events
    from rclpy.event_handler import PublisherEventCallbacks

    MATCHED_EVENTS = "matched" in inspect.signature(PublisherEventCallbacks).parameters
except ImportError:  # Humble names the module qos_event and has no matched event
    MATCHED_EVENTS = False

RAW, COMPRESSED = "raw", "compressed"
TRANSPORTS = (RAW, COMPRESSED)
DETECTIONS, DEBUG_IMAGE = "detections", "debug_image"
POLL_S = 0.5  # idle cameras without matched events: how often to look for subscribers
# Matches no frame with a valid stamp (nanosec < 1e9): DDS drops an idle camera's frames.
NO_FRAME_FILTER = ("header.stamp.nanosec >= %0", ["1000000000"])


@dataclass(frozen=True)
class CameraPlan:
    """One camera: what to subscribe to and where its outputs go (names as given, and
    resolved against the node's namespace for the collision check)."""

    key: str  # the image_topics entry: the runtime's name for this camera
    transport: str
    input_topic: str  # key, or key + "/compressed"
    detections_topic: str
    debug_topic: str
    resolved: tuple[str, str, str]  # input, detections, debug image as fully qualified names


def camera_namespace(topic: str) -> str:
    """The namespace a camera's outputs go under: the topic's parent ('' for a bare name,
    '/' for a topic at the root)."""
    parent, _, _ = topic.rstrip("/").rpartition("/")
    return "/" if topic.startswith("/") and not parent else parent


def output_topic(namespace: str, leaf: str) -> str:
    if not namespace:
        return leaf
    return f"/{leaf}" if namespace == "/" else f"{namespace}/{leaf}"


def plan_cameras(topics: Sequence[str], transports: Sequence[str],
                 resolve: Callable[[str], str]) -> list[CameraPlan]:
    """The cameras of ``image_topics`` / ``image_transports``; ValueError says what is wrong
    (an empty name, a transport list of the wrong length, an unknown transport, a camera
    listed twice, or two cameras whose outputs would share a topic)."""
    topics = [t.strip() for t in topics]
    if not topics or any(not t for t in topics):
        raise ValueError(f"image_topics={list(topics)!r}: give at least one topic and no "
                         "empty names (default: [image])")
    if len(transports) not in (1, len(topics)):
        raise ValueError(f"image_transports has {len(transports)} entries for "
                         f"{len(topics)} image_topics: give one for every camera, or one "
                         "for all")
    kinds = list(transports) * len(topics) if len(transports) == 1 else list(transports)
    plans: list[CameraPlan] = []
    owner: dict[str, str] = {}  # resolved topic -> which camera uses it, and for what
    for topic, kind in zip(topics, kinds, strict=True):
        if kind not in TRANSPORTS:
            raise ValueError(f"image_transports: {kind!r} for {topic} is not one of "
                             f"{', '.join(TRANSPORTS)}")
        namespace = camera_namespace(topic)
        detections = output_topic(namespace, DETECTIONS)
        debug = f"~/{DEBUG_IMAGE}" if not namespace else output_topic(namespace, DEBUG_IMAGE)
        source = f"{topic}/compressed" if kind == COMPRESSED else topic
        resolved = (resolve(source), resolve(detections), resolve(debug))
        for name, what in zip(resolved, ("its input", "its detections", "its debug image"),
                              strict=True):
            if name in owner:
                raise ValueError(
                    f"image_topics: camera {topic} would use {name} ({what}), already "
                    f"{owner[name]}. Outputs go under each camera's namespace (the topic's "
                    "parent): give each camera its own, e.g. /front/image_raw and "
                    "/rear/image_raw")
            owner[name] = f"{what.replace('its ', 'the ')} of camera {topic}"
        plans.append(CameraPlan(topic, kind, source, detections, debug, resolved))
    return plans


class _Camera:
    def __init__(self, plan: CameraPlan, stream: CameraStream, det_pub: LifecyclePublisher,
                 debug_pub: LifecyclePublisher) -> None:
        self.plan = plan
        self.stream = stream
        self.det_pub = det_pub
        self.debug_pub = debug_pub
        self.subscription: Subscription | None = None
        self.debug_wanted = False
        self.filtered = False  # lazy_filter: DDS drops this camera's frames now


class CameraWiring:
    """Subscriptions, publishers, lazy demand and debug images of every camera of a node."""

    def __init__(self, node: LifecycleNode,
                 on_resume: Callable[[], None] | None = None) -> None:
        """``on_resume``: called when an idle camera's frames flow again (a subscription
        made again or a filter cleared: publication sequence numbers jumped meanwhile)."""
        self._node = node
        self._intake = FrameIntake(node)  # the subscriptions, on a thread of their own
        self._on_resume = on_resume
        self.plans: list[CameraPlan] = []
        self._cameras: dict[str, _Camera] = {}
        self._runtime: DetectorRuntime | None = None
        self._painter: Painter[FrameResult] | None = None
        self._qos: QoSProfile | None = None
        self._handler: Callable[..., None] | None = None
        self._with_info = False
        self._active = False
        self._poll: Timer | None = None
        self.lazy = True
        self.lazy_unsubscribe = False
        self.lazy_filter = False
        self._filter_failed = ""  # why the RMW refused a content filter (then: count skips)
        # Serializes subscription changes: lifecycle, matched events and the poll run on the
        # node's executor, the per-frame poll (Humble) on the intake thread.
        self._demand = threading.RLock()

    # -- lifecycle ------------------------------------------------------------------------------
    def check(self) -> str | None:
        """Plan the cameras from the parameters; the reason configure must fail, or None."""
        node = self._node
        try:
            self.plans = plan_cameras(list(node.get_parameter("image_topics").value),
                                      list(node.get_parameter("image_transports").value),
                                      self._resolve)
        except ValueError as exc:
            return str(exc)
        self.lazy = bool(node.get_parameter("lazy").value)
        self.lazy_unsubscribe = self.lazy and bool(node.get_parameter("lazy_unsubscribe").value)
        self.lazy_filter = (self.lazy and not self.lazy_unsubscribe
                            and bool(node.get_parameter("lazy_filter").value)
                            and hasattr(Subscription, "set_content_filter"))
        return None

    def _resolve(self, name: str) -> str:
        resolve = getattr(self._node, "resolve_topic_name", None)
        if resolve is not None:
            return str(resolve(name))
        node = self._node  # rclpy without resolve_topic_name: expand by hand (no remapping)
        if name.startswith("~"):
            return node.get_fully_qualified_name() + name[1:]
        if name.startswith("/"):
            return name
        ns = node.get_namespace().rstrip("/")
        return f"{ns}/{name}"

    def configure(self, runtime: DetectorRuntime) -> None:
        """Publishers and runtime streams for every planned camera (after :meth:`check`)."""
        node = self._node
        self._runtime = runtime
        for plan in self.plans:
            stream = runtime.camera(plan.key)
            holder: list[_Camera] = []
            det_pub = self._publisher(Detection2DArray, plan.detections_topic, 10, holder)
            debug_pub = self._publisher(Image, plan.debug_topic, 1, holder)
            camera = _Camera(plan, stream, det_pub, debug_pub)
            holder.append(camera)
            self._cameras[plan.key] = camera
            self._refresh(camera)
        self._painter = Painter(self._draw)
        lazy = "lazy off"
        if self.lazy:
            lazy = "lazy: idle while nobody subscribes" + (
                ", unsubscribed from the camera meanwhile" if self.lazy_unsubscribe else
                ", its frames filtered out by DDS meanwhile" if self.lazy_filter else "")
        node.get_logger().info(f"{len(self.plans)} camera(s): " + "; ".join(
            f"{p.resolved[0]} ({p.transport}) -> {p.resolved[1]}" for p in self.plans)
            + f"; {lazy}")

    def _publisher(self, kind: Any, topic: str, depth: int,
                   holder: list[_Camera]) -> LifecyclePublisher:
        kwargs: dict[str, Any] = {}
        if MATCHED_EVENTS:  # lazy or not: the debug image is drawn only while watched
            def matched(_info: object) -> None:  # on the executor: (un)subscribed
                if holder:
                    self._refresh(holder[0])
            kwargs["event_callbacks"] = PublisherEventCallbacks(matched=matched)
        return self._node.create_lifecycle_publisher(kind, topic, depth, **kwargs)

    def activate(self, qos: QoSProfile, handler: Callable[..., None], with_info: bool) -> None:
        """Subscribe every camera (an idle one too, unless ``lazy_unsubscribe``).
        ``handler(msg, source)``, or ``handler(msg, info, source)`` when ``with_info``."""
        assert self._painter is not None
        self._painter.start()
        with self._demand:
            self._qos, self._handler, self._with_info = qos, handler, with_info
            self._active = True
            for camera in self._cameras.values():
                self._refresh(camera)
                if camera.subscription is None and not (self.lazy_unsubscribe
                                                        and not camera.stream.wanted):
                    self._subscribe(camera)
                    self._filter(camera)
        if (self.lazy_unsubscribe or self.lazy_filter) and not MATCHED_EVENTS:
            # No frames reach an idle camera's callback then: look for subscribers instead.
            self._poll = self._node.create_timer(POLL_S, self.refresh_all)

    def describe(self) -> str:
        def one(c: _Camera) -> str:
            source = c.subscription.topic_name if c.subscription else \
                f"{c.plan.resolved[0]} (idle, unsubscribed)"
            return f"{source} -> {c.det_pub.topic_name}"
        return "; ".join(one(c) for c in self._cameras.values())

    def deactivate(self) -> None:
        if self._poll is not None:
            self._node.destroy_timer(self._poll)
            self._poll = None
        with self._demand:
            self._active = False
            for camera in self._cameras.values():
                self._unsubscribe(camera)
        if self._painter is not None:
            self._painter.stop()

    def release(self) -> None:
        self.deactivate()
        for camera in self._cameras.values():
            for pub in (camera.det_pub, camera.debug_pub):
                self._node.destroy_lifecycle_publisher(pub)
        self._cameras.clear()
        self._intake.close()
        self._runtime = None
        self._painter = None

    # -- demand ---------------------------------------------------------------------------------
    def _subscribe(self, camera: _Camera) -> None:
        assert self._qos is not None and self._handler is not None
        kind = CompressedImage if camera.plan.transport == COMPRESSED else Image
        camera.subscription = self._intake.create_subscription(
            kind, camera.plan.resolved[0], self._callback(camera), self._qos)

    def _unsubscribe(self, camera: _Camera) -> None:
        if camera.subscription is not None:
            self._intake.destroy_subscription(camera.subscription)
            camera.subscription = None
        camera.filtered = False

    def _filter(self, camera: _Camera) -> None:
        """lazy_filter: a filter matching no frame while idle, none while wanted."""
        sub = camera.subscription
        if not self.lazy_filter or sub is None or (self._filter_failed and not camera.filtered):
            return
        idle = not camera.stream.wanted
        if idle == camera.filtered:
            return
        if not idle and self._on_resume is not None:  # before the first frame can arrive
            self._on_resume()
        try:
            if idle:
                self._intake.set_content_filter(sub, *NO_FRAME_FILTER)
            else:
                self._intake.set_content_filter(sub, "", [])
        except TimeoutError as exc:  # the intake thread is stuck: try again on the next refresh
            self._node.get_logger().warning(f"lazy_filter: camera {camera.plan.key}: {exc}; "
                                            "its filter is left as it was")
            return
        except Exception as exc:  # the RMW has no content filters: deliver and count
            self._filter_failed = f"{type(exc).__name__}: {exc}"
            if not idle:  # the filter is stuck on: a fresh subscription has none
                self._unsubscribe(camera)
                self._subscribe(camera)
        else:
            if idle and not sub.is_cft_enabled:
                self._filter_failed = "the middleware ignores content filters"
        if self._filter_failed:
            self._node.get_logger().warning(
                f"lazy_filter: cannot filter idle cameras' frames in the middleware "
                f"({self._filter_failed}); they are received and let go (idle skips)")
            return
        camera.filtered = idle

    def _callback(self, camera: _Camera) -> Callable[..., None]:
        """The subscription callback of one camera: its name travels with every frame."""
        handler, key = self._handler, camera.plan.key
        assert handler is not None
        poll = self.lazy and not MATCHED_EVENTS
        if self._with_info:
            def with_info(msg: Any, info: Any) -> None:
                if poll:
                    self._refresh_from_frame(camera)
                handler(msg, info, key)
            return with_info

        def message_only(msg: Any) -> None:
            if poll:
                self._refresh_from_frame(camera)
            handler(msg, key)
        return message_only

    def _refresh(self, camera: _Camera) -> None:
        """Recount one camera's subscribers (matched event, poll, or per frame on Humble)."""
        with self._demand:
            debug = camera.debug_pub.get_subscription_count()
            camera.debug_wanted = debug > 0
            wanted = not self.lazy or debug + camera.det_pub.get_subscription_count() > 0
            if wanted and not camera.stream.wanted:
                self._node.get_logger().info(f"camera {camera.plan.key}: a subscriber appeared, "
                                             "processing its frames again")
            elif camera.stream.wanted and not wanted:
                self._node.get_logger().info(f"camera {camera.plan.key}: no subscribers, idle "
                                             "(frames are not converted or inferred)")
            camera.stream.wanted = wanted
            if self.lazy_unsubscribe and self._active:
                if wanted and camera.subscription is None:
                    if self._on_resume is not None:
                        self._on_resume()
                    self._subscribe(camera)
                elif not wanted and camera.subscription is not None:
                    self._unsubscribe(camera)
            elif self._active:
                self._filter(camera)

    def _refresh_from_frame(self, camera: _Camera) -> None:
        """The per-frame poll (Humble), on the intake thread: skipped while the node's
        executor is changing subscriptions, as that may be waiting for this thread."""
        if self._demand.acquire(blocking=False):
            try:
                self._refresh(camera)
            finally:
                self._demand.release()

    def refresh_all(self) -> None:
        for camera in self._cameras.values():
            self._refresh(camera)

    def idle(self) -> bool:
        """Nobody subscribes to any camera's outputs (lazy): the workers sleep."""
        return self.lazy and bool(self._cameras) and not any(
            c.stream.wanted for c in self._cameras.values())

    def activity(self) -> str:
        if not self.lazy or not self._cameras:
            return "processing"
        idle = [k for k, c in self._cameras.items() if not c.stream.wanted]
        if len(idle) == len(self._cameras):
            return IDLE_NO_SUBSCRIBERS
        return "processing" + (f" ({IDLE_NO_SUBSCRIBERS} to {', '.join(idle)})" if idle else "")

    def single_publishers(self) -> dict[str, bool]:
        """Per subscribed camera: at most one publisher on its topic (its anonymous sequence
        numbers are then one stream)."""
        return {key: self._node.count_publishers(c.subscription.topic_name) <= 1
                for key, c in self._cameras.items() if c.subscription is not None}

    # -- frames ---------------------------------------------------------------------------------
    @staticmethod
    def convert(payload: object) -> ImageView:
        """On a worker: a zero-copy view of a raw frame, or the decoded compressed one."""
        if isinstance(payload, CompressedImage):
            try:
                return decode_compressed(payload.format, payload.data)
            except ImageFormatError as exc:  # it quotes the sender's format string
                raise ImageFormatError(printable(str(exc), 400)) from None
        assert isinstance(payload, Image)
        return view_of(payload)

    def publish(self, result: FrameResult) -> None:
        """On a worker, in the camera's arrival order: its detections, with its header, on
        its topic; the debug image is left to the painter when someone watches it."""
        camera = self._cameras.get(result.frame.source)
        if camera is None:  # released while the frame was in flight
            return
        msg = result.frame.payload
        camera.det_pub.publish(detections_msg(result.detections, msg.header,  # type: ignore[attr-defined]
                                              result.engine.first.info.class_names))
        if camera.debug_wanted and result.view is not None and self._painter is not None:
            self._painter.offer(camera.plan.key, result)

    def _draw(self, key: str, result: FrameResult) -> None:
        """On the painter's thread: the annotated frame on the camera's debug topic."""
        camera = self._cameras.get(key)
        if camera is None or result.view is None:
            return
        stats = camera.stream.window.stats()
        lines = [f"{key}  {result.engine.label}",
                 f"{stats.fps:.1f} fps  e2e p50 {stats.end_to_end_p50_ms:.0f} ms"]
        pixels = draw_detections(result.view, result.detections,
                                 result.engine.first.info.class_names, lines)
        h, w = pixels.shape[:2]
        out = Image(header=result.frame.payload.header,  # type: ignore[attr-defined]
                    height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3)
        out.data = pixels.tobytes()
        camera.debug_pub.publish(out)

    # -- status ---------------------------------------------------------------------------------
    def statuses(self, state: str) -> list[Health]:
        """One /diagnostics status per camera (also refreshes the demand: a missed event
        costs at most one status period)."""
        out = []
        painter = self._painter
        for key, camera in self._cameras.items():
            self._refresh(camera)
            plan = camera.plan
            out.append(camera_health(
                state, camera.stream.snapshot(), input_topic=plan.resolved[0],
                transport=plan.transport, detections_topic=plan.resolved[1],
                debug_topic=plan.resolved[2], subscribed=camera.subscription is not None,
                debug_images=painter.drawn[key] if painter else 0, filtered=camera.filtered))
        return out

    def annotate(self, msg: EfficiencyStatus) -> None:
        """The lazy figures of ~/efficiency."""
        msg.activity = self.activity()
        msg.frames_idle_skipped = sum(c.stream.idle_skipped for c in self._cameras.values())

    def stream_of(self, key: str) -> CameraStream | None:
        camera = self._cameras.get(key)
        return camera.stream if camera else None

    @property
    def keys(self) -> list[str]:
        return list(self._cameras)


__all__ = ["COMPRESSED", "MATCHED_EVENTS", "RAW", "TRANSPORTS", "CameraPlan", "CameraWiring",
           "camera_namespace", "plan_cameras"]
